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
