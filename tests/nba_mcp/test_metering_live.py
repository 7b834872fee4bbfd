"""Each MCP tools/call is one API call through the REST admission: one quota, one ledger, refusals as tool errors."""

from __future__ import annotations

import datetime as dt
import time

import anyio
import pytest
from django.db.models import F
from django.utils import timezone

from tests.conftest import TenantClient, tenant_host
from tests.nba_mcp.conftest import host, mcp_session

pytestmark = pytest.mark.django_db(transaction=True)


def _plan(code: str, **limits):
    from tenants.models import Plan

    plan, _ = Plan.objects.update_or_create(code=code, defaults={"name": code.title(), **limits})
    return plan


def _set_plan(schema_name: str, plan) -> None:
    from tenants.models import Tenant

    Tenant.objects.filter(schema_name=schema_name).update(plan=plan)


async def _calls(url: str, key: str, count: int, tool: str = "list_teams", arguments=None):
    async with mcp_session(url, host=host("lakers"), key=key) as session:
        return [await session.call_tool(tool, arguments or {}) for _ in range(count)]


def test_the_daily_quota_is_shared_with_rest_and_refused_as_a_tool_error_until_the_next_day(mcp_server, leagues):
    from nba_mcp import selectors
    from nba_mcp.models import ToolCall
    from tenants.models import Tenant, UsageDay

    _, key = leagues["lakers"]
    _set_plan("lakers", _plan("TINY", api_calls_per_day=4, max_concurrent_requests=5))
    lakers = Tenant.objects.get(schema_name="lakers")
    rest = TenantClient(tenant_host("lakers"), HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert rest.get("/api/v1/teams/").status_code == 200  # one REST call of the four

    results = anyio.run(_calls, mcp_server.url, key, 4)
    assert [r.is_error for r in results] == [False, False, False, True]
    error = results[-1].structured_content["error"]
    assert error["code"] == "daily_quota_exceeded"
    assert error["detail"]["quota"] == "api_calls_per_day" and error["detail"]["limit"] == 4
    resets_at = dt.datetime.fromisoformat(error["detail"]["resets_at"])
    tomorrow = dt.datetime.combine(timezone.now().astimezone(dt.UTC).date() + dt.timedelta(days=1), dt.time(),
                                   tzinfo=dt.UTC)
    assert abs((resets_at - tomorrow).total_seconds()) < 5
    assert rest.get("/api/v1/teams/").status_code == 429  # the REST API sees the same day used up

    assert UsageDay.objects.get(tenant=lakers, date=timezone.now().astimezone(dt.UTC).date()).api_calls == 4
    assert _until(lambda: ToolCall.objects.count() == 4)  # rows are written in batches, every 0.5 s
    assert selectors.usage_by_surface(tenant=lakers) == {
        "date": timezone.now().astimezone(dt.UTC).date().isoformat(), "api_calls": 4, "mcp": 3, "rest": 1}
    outcomes = list(ToolCall.objects.order_by("started_at").values_list("outcome", "error_code", "surface"))
    assert outcomes == [("ok", "", "mcp")] * 3 + [("refused", "daily_quota_exceeded", "mcp")]

    # The next UTC day's window: today's row becomes yesterday's, and calls go through again.
    UsageDay.objects.filter(tenant=lakers).update(date=F("date") - dt.timedelta(days=1))
    assert [r.is_error for r in anyio.run(_calls, mcp_server.url, key, 1)] == [False]

    # A plan upgrade lets calls through at once (the plan is read with the tenant on every request).
    UsageDay.objects.filter(tenant=lakers).update(api_calls=4)
    assert anyio.run(_calls, mcp_server.url, key, 1)[0].is_error
    _set_plan("lakers", _plan("PROFESSIONAL"))
    assert [r.is_error for r in anyio.run(_calls, mcp_server.url, key, 2)] == [False, False]


def test_a_call_needs_a_concurrency_lease_shared_with_rest_requests(mcp_server, leagues):
    from tenants import metering
    from tenants.models import Tenant

    _, key = leagues["lakers"]
    _set_plan("lakers", _plan("SINGLE", api_calls_per_day=1000, max_concurrent_requests=1))
    lakers = Tenant.objects.select_related("plan").get(schema_name="lakers")
    in_flight = metering.admit(tenant=lakers, authenticated=True)  # a REST request of the tenant, in flight
    try:
        [refused] = anyio.run(_calls, mcp_server.url, key, 1)
    finally:
        metering.release(in_flight)
    assert refused.is_error
    error = refused.structured_content["error"]
    assert (error["code"], error["detail"]["quota"], error["detail"]["limit"]) == (
        "concurrency_limit_exceeded", "max_concurrent_requests", 1)
    # Each call's lease is released when it answers: many calls in a row on a one-request plan all pass.
    assert [r.is_error for r in anyio.run(_calls, mcp_server.url, key, 5)] == [False] * 5


def test_the_burst_limit_is_the_tenants_api_rate_limit(mcp_server, leagues):
    from configuration import config

    _, key = leagues["lakers"]
    config.set("api.rate_limit_per_minute", 2, tenant="lakers")
    results = anyio.run(_calls, mcp_server.url, key, 3)
    assert not results[0].is_error  # the first call of a minute always fits (a minute may roll over later)
    refusal = next(r for r in results if r.is_error).structured_content["error"]
    assert refusal["code"] == "burst_limit_exceeded" and refusal["detail"]["limit"] == 2
    assert refusal["detail"]["quota"] == "api.rate_limit_per_minute" and "resets_at" in refusal["detail"]


def _listed(url: str, key: str) -> set[str]:
    async def listing():
        async with mcp_session(url, host=host("lakers"), key=key) as session:
            return {tool.name for tool in (await session.list_tools()).tools}

    return anyio.run(listing)


def _until(predicate, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_the_plans_tools_and_the_row_cap_come_from_the_configuration_live(mcp_server, leagues):
    from configuration import config
    from nba_mcp.models import ToolCall

    _, key = leagues["lakers"]
    _set_plan("lakers", _plan("FREE"))
    assert _listed(mcp_server.url, key) == {"search_players", "player_averages", "list_teams", "standings"}
    [refused] = anyio.run(_calls, mcp_server.url, key, 1, "list_games", {})
    assert refused.structured_content["error"]["code"] == "tool_not_in_plan"
    assert not ToolCall.objects.filter(tool="list_games", outcome="ok").exists()

    # A change in the store reaches the running server for its next call, without a restart.
    config.set("mcp.plan_tools.free", ["search_players", "list_games"])
    assert _until(lambda: _listed(mcp_server.url, key) == {"search_players", "list_games"})
    [games] = anyio.run(_calls, mcp_server.url, key, 1, "list_games", {})
    assert not games.is_error and games.structured_content["count"] == 3

    config.set("mcp.max_results", 2, tenant="lakers")

    def capped():
        [found] = anyio.run(_calls, mcp_server.url, key, 1, "search_players", {"query": "laker", "limit": 50})
        return found.structured_content["count"] == 2 and found.structured_content["truncated"]

    assert _until(capped)
