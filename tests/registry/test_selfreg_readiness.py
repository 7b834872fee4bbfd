"""A web process that registers before any task cluster has heartbeated turns passing within one heartbeat of the
cluster's first beat, with no probe of its /readyz at all.

The production stack (gunicorn, production settings) on the test database: its first request (the start-up's
GET /healthz) registers the worker, and its /readyz check is recorded critical in-process (no cluster yet, so
/readyz would answer 503). Until a probe of the health sweep judged that check, only the process itself can
correct it: its heartbeat judges its readiness again, in-process, until the check is passing. Without that it
stayed critical until the cluster's next probing sweep (up to 30 s in production; never in the rehearsal of
tests/rehearsal, whose sweep did not probe).
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import database_url
from tests.deploy import stack

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

HEARTBEAT = 0.5  # the processes' heartbeat period here
SLACK = 1.5  # the scheduling of a loaded machine; a bound on behaviour, not a speed assertion
STARTUP_SECONDS = 90  # bounds on waiting, not assertions on speed


def _web():
    from registry.models import ServiceInstance

    return ServiceInstance.objects.filter(name="courtside-web").first()


def _cluster_first_beat():
    from registry.models import ServiceInstance

    return (ServiceInstance.objects.filter(name="courtside-cluster", last_heartbeat__isnull=False)
            .order_by("last_heartbeat").values_list("last_heartbeat", flat=True).first())


def _wait(condition, *, what: str, timeout: float = STARTUP_SECONDS, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, what
        time.sleep(every)


def test_a_web_process_registered_before_any_cluster_beat_turns_passing_within_one_heartbeat(tmp_path_factory):
    from registry.models import CheckResult, HealthCheck

    static_root = stack.collected_static_root(database_url(), tmp_path_factory.getbasetemp())  # once per session
    env = stack.production_env(database_url(), static_root, HEALTH_CLUSTER_MAX_AGE="4",
                               COURTSIDE_SERVICES_SELF_HEARTBEAT_EVERY=str(HEARTBEAT),
                               COURTSIDE_SERVICES_SELF_TTL="3", WEB_CONCURRENCY="1", WEB_THREADS="4")
    server, _url = stack.start_server(env)  # its GET /healthz registers the worker: no cluster has beaten yet
    cluster = None
    try:
        web = _wait(_web, what="the web worker never registered")
        check = HealthCheck.objects.get(instance=web, name="readyz")
        assert check.status == "critical", (check.status, check.output)
        assert check.output == "readiness in-process at registration: unavailable", check.output
        assert _wait(lambda: _web().last_heartbeat, what="the web worker never heartbeated")
        assert _web().status == "critical"  # alive (its TTL check passes) but not ready

        cluster = stack.start_cluster(env)
        first_beat = _wait(_cluster_first_beat, what=f"the cluster never heartbeated:\n{server.output[-2000:]}")
        # Nothing probes here (no sweep runs): only the web process's own heartbeat can turn it passing.
        web = _wait(lambda: (w := _web()) is not None and w.status == "passing" and w, timeout=30,
                    what="the web worker stayed critical after the cluster's first heartbeat")
        check = HealthCheck.objects.get(instance=web, name="readyz")
        turned = (CheckResult.objects.filter(health_check=check, ok=True).order_by("at")
                  .values_list("at", flat=True).first())
        assert turned is not None
        assert (turned - first_beat).total_seconds() <= HEARTBEAT + SLACK, (turned, first_beat)
        assert check.status == "passing" and check.output.startswith("readiness in-process"), check.output
    finally:
        if cluster is not None:
            cluster.stop()
        server.stop()
