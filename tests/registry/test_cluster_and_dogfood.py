"""The health sweep on a real django-q2 cluster, and Courtside's own processes in its registry."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from registry.models import ServiceInstance
from tests.conftest import PUBLIC_HOST, TenantClient, database_url
from tests.registry.conftest import SWEEP_TASK, register, sweep, sweep_schedule_due

ROOT = Path(__file__).resolve().parents[2]


def test_nothing_registers_itself_under_the_test_settings(operator_client):
    operator_client.get("/admin/")
    sweep(budget=0)
    assert not ServiceInstance.objects.exists()


def test_the_web_process_registers_itself_on_its_first_request_and_shows_in_the_admin(operator_client, settings):
    settings.SERVICES = {"SELF_REGISTER": True}

    page = operator_client.get("/admin/services/serviceinstance/").content.decode()

    web = ServiceInstance.objects.get(name="courtside-web")
    assert web.status == "passing" and web.last_heartbeat is not None
    assert web.metadata["pid"] == os.getpid() and web.tags == ["courtside", "web"]
    assert "courtside-web" in page


def test_a_tenant_request_registers_the_process_in_the_public_registry_only(lakers_client, settings):
    settings.SERVICES = {"SELF_REGISTER": True}

    lakers_client.get("/admin/")

    assert ServiceInstance.objects.filter(name="courtside-web").count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'lakers' "
                       "AND table_name LIKE 'services_%%'")
        assert cursor.fetchone()[0] == 0


def test_the_cluster_registers_itself_from_its_sweep(db, settings):
    settings.SERVICES = {"SELF_REGISTER": True}

    sweep(budget=0)

    cluster = ServiceInstance.objects.get(name="courtside-cluster")
    assert cluster.status == "passing" and cluster.port is None


def _env(settings_module: str) -> dict:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url()}


SCHEDULER_ONCE = (
    "import django; django.setup(); from django_q.brokers import get_broker; "
    "from django_q.scheduler import scheduler; scheduler(broker=get_broker())"
)


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_the_scheduled_sweep_runs_http_checks_on_a_real_cluster(public_tenant, probe_target):
    from tasks.models import Status, TaskRun

    register("stats-1", checks=[{"kind": "http", "url": probe_target.url, "interval": "1s", "timeout": "1s"}])
    sweep_schedule_due()  # the system job's schedule, as the reconcile after migrate makes it
    env = _env("tests.registry.cluster_settings")
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    done = TaskRun.objects.filter(name=SWEEP_TASK, status=Status.SUCCEEDED)
    try:
        # What the cluster's guard does every 30 s, once, now: enqueue the due schedule (it submits a TaskRun).
        subprocess.run([sys.executable, "-c", SCHEDULER_ONCE], cwd=ROOT, env=env, check=True, timeout=60,
                       capture_output=True)
        deadline = time.monotonic() + 60  # a bound on waiting, not an assertion on speed
        while time.monotonic() < deadline and cluster.poll() is None and not done.exists():
            time.sleep(0.2)
    finally:
        cluster.send_signal(signal.SIGTERM)
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cluster.kill()
    run = done.first()
    assert run is not None, cluster.stderr.read()[-3000:] if cluster.stderr else ""
    assert run.schedule.name == "services: health sweep" and run.submitted_by == "schedule services: health sweep"
    assert run.result["sweeps"] >= 1 and run.result["probed"] >= 1
    assert ServiceInstance.objects.get(service_id="stats-1").status == "passing"
    assert probe_target.requests >= 1
    assert ServiceInstance.objects.filter(name="courtside-cluster", status="passing").exists()


def test_the_web_process_tolerates_a_registry_failure(public_tenant, settings):
    settings.SERVICES = {"SELF_REGISTER": True, "SELF_TTL": -5}  # invalid: registration refuses it

    response = TenantClient(PUBLIC_HOST).get("/api/v1/services/")

    assert response.status_code == 401  # the request itself is answered as usual
    assert not ServiceInstance.objects.exists()
