"""Each mcp_serve process is a registered, heartbeating, health-checked `nba-mcp-server` instance."""

from __future__ import annotations

import os
import signal
import time

import anyio
import pytest

from registry import sweeps
from registry.models import ServiceInstance
from tests.nba_mcp.conftest import host, mcp_session, start_mcp_serve

pytestmark = pytest.mark.django_db(transaction=True)

TTL = 3.0  # tests/nba_mcp/server_settings.py
SLACK = 1.5  # one sweep of the test's loop and the scheduling of a loaded machine; not a speed assertion
WAIT_SECONDS = 60  # bounds on waiting, not assertions on speed


def _instance(service_id: str) -> ServiceInstance | None:
    return ServiceInstance.objects.filter(service_id=service_id).first()


def _wait_until_passing(*service_ids: str) -> dict[str, ServiceInstance]:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        sweeps.health_sweep()  # what the cluster runs: TTL expiry and the HTTP checks on /health
        found = {sid: _instance(sid) for sid in service_ids}
        if all(i is not None and i.status == "passing" for i in found.values()):
            return found
        time.sleep(0.3)
    raise AssertionError(f"never passing: {list(ServiceInstance.objects.values('service_id', 'status'))}")


def test_a_process_registers_with_tags_metadata_and_checks_stays_passing_idle_and_deregisters_on_stop(leagues):
    server = start_mcp_serve()
    try:
        instance = _wait_until_passing(server.service_id)[server.service_id]
        assert (instance.name, instance.port) == ("nba-mcp-server", server.port)
        assert set(instance.tags) == {"mcp", "streamable-http", "v1.0.0"}
        assert instance.metadata["tools"] == 13 and instance.metadata["port"] == server.port
        assert instance.metadata["pid"] == server.process.pid
        checks = {check.kind: check for check in instance.checks.all()}
        assert set(checks) == {"ttl", "http"}
        assert checks["http"].http_url == f"http://127.0.0.1:{server.port}/health"
        assert checks["http"].status == "passing"
        deadline = time.monotonic() + 2 * TTL  # idle: no MCP traffic at all, still passing at every sweep
        while time.monotonic() < deadline:
            sweeps.health_sweep(probe=False)
            assert _instance(server.service_id).status == "passing"
            time.sleep(0.3)
    finally:
        server.stop(signal.SIGTERM)
    assert _instance(server.service_id) is None  # a clean stop deregisters


def test_two_processes_are_two_passing_instances_round_robin_alternates_and_a_killed_one_turns_critical(
        leagues, operator_client):
    _, key = leagues["lakers"]
    first, second = start_mcp_serve(), start_mcp_serve()
    try:
        _wait_until_passing(first.service_id, second.service_id)
        picked = []
        for _ in range(4):
            answer = operator_client.get("/api/v1/services/nba-mcp-server/next")
            assert answer.status_code == 200, answer.content
            picked.append(answer.json()["port"])
        assert picked[0] != picked[1] and picked[:2] == picked[2:]
        assert set(picked) == {first.port, second.port}

        # A client that discovers an instance reaches the tenant there.
        async def through(port):
            async with mcp_session(f"http://127.0.0.1:{port}/mcp", host=host("lakers"), key=key) as session:
                return (await session.call_tool("list_teams", {})).structured_content["count"]

        assert [anyio.run(through, port) for port in picked[:2]] == [2, 2]

        os.killpg(first.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        while time.monotonic() - killed_at < WAIT_SECONDS:
            sweeps.health_sweep(probe=False)
            if _instance(first.service_id).status == "critical":
                break
            time.sleep(0.2)
        assert time.monotonic() - killed_at <= TTL + SLACK
        assert _instance(second.service_id).status == "passing"
        assert {operator_client.get("/api/v1/services/nba-mcp-server/next").json()["port"]
                for _ in range(3)} == {second.port}
    finally:
        first.stop()
        second.stop()
