"""/healthz and /readyz of the production stack: ready with the task cluster running, 503 once it stopped."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.deploy import stack


def _probe(server, path, host="localhost"):
    # No X-Forwarded-Proto: a load balancer probes over plain HTTP, and is not redirected.
    return httpx.get(f"{server.url}{path}", headers={"Host": host}, timeout=10)


def _wait_for(server, status, timeout=60.0):
    deadline = time.monotonic() + timeout
    while True:
        response = _probe(server, "/readyz")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


@pytest.mark.django_db(transaction=True)
def test_readyz_follows_the_task_cluster(production_server, production_env):
    for host in ("localhost", "lakers.localhost", "127.0.0.1", "10.9.9.9"):
        health = _probe(production_server, "/healthz", host=host)
        assert health.status_code == 200 and health.json() == {"status": "ok"}, host
    assert _probe(production_server, "/readyz").status_code == 503  # no cluster yet
    cluster = stack.start_cluster(production_env)
    try:
        ready = _wait_for(production_server, 200)
        assert ready.status_code == 200, (ready.text, cluster.output[-3000:])
        assert ready.json() == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "cluster": "ok"}}
        for host in ("lakers.localhost", "127.0.0.1"):  # any host; speed is bench/ work, not a timed test
            assert _probe(production_server, "/readyz", host=host).status_code == 200
    finally:
        cluster.stop()
    stopped = _wait_for(production_server, 503, timeout=30)
    assert stopped.status_code == 503
    assert stopped.json() == {"status": "unavailable",
                              "checks": {"database": "ok", "migrations": "ok", "cluster": "unavailable"}}


def _web_instances():
    from registry.models import ServiceInstance

    return {instance.service_id: instance for instance in ServiceInstance.objects.filter(name="courtside-web")}


def _sweep_until(condition, *, what: str, timeout: float = 60.0):
    """Sweep the registry (probing, as the cluster's scheduled sweep does) until condition(instances) holds."""
    from registry import sweeps

    deadline = time.monotonic() + timeout
    while True:
        sweeps.health_sweep()
        instances = _web_instances()
        if instances and condition(instances):
            return instances
        assert time.monotonic() < deadline, f"{what}: {[(i.service_id, i.status) for i in instances.values()]}"
        time.sleep(0.3)


@pytest.mark.django_db(transaction=True)
def test_the_web_process_registers_a_readyz_check_that_follows_the_task_cluster(production_server, production_env):
    """The registry's HTTP check of each gunicorn worker GETs its /readyz: passing with the cluster up, critical
    once the cluster stopped, while the worker still heartbeats (its TTL check stays passing)."""
    from registry.models import HealthCheck

    cluster = stack.start_cluster(production_env)
    try:
        ready = _wait_for(production_server, 200)
        assert ready.status_code == 200, (ready.text, cluster.output[-3000:])
        for _ in range(6):  # a worker registers on its first request; with two workers, likely both do
            _probe(production_server, "/healthz")
        port = production_server.url.rsplit(":", 1)[1]
        passing = _sweep_until(lambda found: all(i.status == "passing" for i in found.values()),
                               what="the web workers never showed passing")
        for instance in passing.values():
            check = HealthCheck.objects.get(instance=instance, kind="http")
            assert (check.name, check.http_url) == ("readyz", f"http://127.0.0.1:{port}/readyz")
            assert check.status == "passing"
    finally:
        cluster.stop()
    assert _wait_for(production_server, 503, timeout=30).status_code == 503
    critical = _sweep_until(lambda found: all(i.status == "critical" for i in found.values()),
                            what="the web workers never turned critical with the cluster stopped")
    for instance in critical.values():
        checks = {check.name: check for check in HealthCheck.objects.filter(instance=instance)}
        assert checks["readyz"].status == "critical" and "503" in checks["readyz"].output
        assert checks["ttl"].status == "passing"  # alive, not ready
