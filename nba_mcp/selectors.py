"""Reads of the MCP surface's figures: usage by surface, and calls, errors and p50 by tool."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, FloatField, Q, QuerySet
from django.db.models.aggregates import Aggregate
from django.utils import timezone

from nba_mcp.models import ToolCall
from tenants.models import Tenant, UsageDay


class Percentile(Aggregate):
    """PostgreSQL's percentile_cont(p) WITHIN GROUP (ORDER BY expression)."""

    function = "percentile_cont"
    template = "%(function)s(%(percentile)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, percentile: float, **extra):
        super().__init__(expression, percentile=float(percentile), **extra)


def _utc_day(day: dt.date | None) -> dt.date:
    return day or timezone.now().astimezone(dt.UTC).date()


def usage_by_surface(*, tenant: Tenant, day: dt.date | None = None) -> dict:
    """A tenant's API calls of a UTC day from the usage ledger, split by surface.

    `api_calls` is the ledger's count (what the quota and the statements use); the admission counts the
    MCP tools/calls among them (UsageDay.mcp_calls), and the rest came through the REST API (or its task runs).
    """
    day = _utc_day(day)
    row = UsageDay.objects.filter(tenant=tenant, date=day).values_list("api_calls", "mcp_calls").first() or (0, 0)
    return {"date": day.isoformat(), "api_calls": row[0], "mcp": row[1], "rest": max(0, row[0] - row[1])}


def tool_figures(*, since: dt.datetime | None = None, tenant: Tenant | None = None) -> QuerySet:
    """Per tenant and tool: calls, errors, refusals and the median duration (ms), busiest first."""
    calls = ToolCall.objects.all()
    if since is not None:
        calls = calls.filter(started_at__gte=since)
    if tenant is not None:
        calls = calls.filter(tenant=tenant)
    return (calls.values("tenant__schema_name", "tool")
            .annotate(calls=Count("id"), errors=Count("id", filter=Q(outcome=ToolCall.Outcome.ERROR)),
                      refused=Count("id", filter=Q(outcome=ToolCall.Outcome.REFUSED)),
                      p50_ms=Percentile("duration_ms", percentile=0.5))
            .order_by("-calls", "tenant__schema_name", "tool"))


def instances() -> list:
    """The registered nba-mcp-server instances, passing or not (the registry's discovery)."""
    from registry import selectors as registry

    return registry.discover("nba-mcp-server")


def connection_url(*, tenant: Tenant) -> str:
    """Where the tenant's MCP clients connect: its primary host on a registered instance's port."""
    import os

    domain = tenant.get_primary_domain()
    ports = sorted({i.port for i in instances() if i.port and i.status == "passing"})
    port = ports[0] if ports else int(os.environ.get("COURTSIDE_MCP_PORT", "8100"))
    return f"http://{domain.domain if domain else tenant.schema_name}:{port}/mcp"
