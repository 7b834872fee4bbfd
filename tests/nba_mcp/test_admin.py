"""Admin pages of the MCP service: the operator's instances and figures, a tenant's connection page and usage."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from registry import registration


def _calls(tenant, tool: str, durations, outcome="ok"):
    from nba_mcp.models import ToolCall

    now = timezone.now()
    ToolCall.objects.bulk_create(ToolCall(tenant=tenant, tool=tool, started_at=now - dt.timedelta(seconds=i),
                                          duration_ms=ms, outcome=outcome) for i, ms in enumerate(durations))


@pytest.mark.django_db
def test_the_operator_sees_mcp_instances_and_calls_errors_and_p50_by_tool_per_tenant(operator_client, two_tenants):
    lakers, warriors = two_tenants
    registration.service_register(service_id="mcp-host-8100-1", name="nba-mcp-server", host="10.0.0.5", port=8100,
                              tags=["mcp", "streamable-http"], metadata={"tools": 10})
    _calls(lakers, "search_players", [10.0, 20.0, 30.0])
    _calls(lakers, "search_players", [5.0], outcome="error")
    _calls(warriors, "standings", [7.0, 9.0])
    page = operator_client.get("/admin/nba_mcp/toolcall/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "mcp-host-8100-1" in text and "10.0.0.5:8100" in text
    figures = {(row["tenant__schema_name"], row["tool"]): (row["calls"], row["errors"], row["p50_ms"])
               for row in page.context["mcp_figures"]}
    assert figures == {("lakers", "search_players"): (4, 1, 15.0), ("warriors", "standings"): (2, 0, 8.0)}


@pytest.mark.django_db
def test_a_tenant_admin_says_how_to_connect_which_tools_its_plan_allows_and_only_its_own_usage(
        lakers_client, warriors_client, two_tenants):
    from tenants.models import Plan, Tenant

    lakers, warriors = two_tenants
    Tenant.objects.filter(pk=lakers.pk).update(plan=Plan.objects.get(code="FREE"))
    _calls(lakers, "search_players", [10.0, 12.0])
    _calls(warriors, "box_score", [3.0])
    page = lakers_client.get("/admin/nba_mcp/tenantmcpusage/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "http://lakers.localhost:8100/mcp" in text and "Authorization" in text
    assert page.context["mcp_tools"] == ["search_players", "player_averages", "list_teams", "standings"]
    assert [row["tool"] for row in page.context["mcp_figures"]] == ["search_players"]
    assert "box_score" not in text
    other = warriors_client.get("/admin/nba_mcp/tenantmcpusage/")
    assert [row["tool"] for row in other.context["mcp_figures"]] == ["box_score"]
    assert "search_players" in other.context["mcp_tools"] and "project_points" in other.context["mcp_tools"]
