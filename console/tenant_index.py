"""What a tenant admin's home page shows: its plan, and its usage against the plan's quotas.

Figures only of the request's own tenant: the ledger rows of that tenant (tenants.selectors.usage_window),
its measured storage, and row counts of its own schema (users, saved models) read live. Limits and their
labels come from the one registry of quotas (tenants.quotas); the chart from core.charts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.utils import timezone

from core import charts
from league.models import StatModel
from tenants import quotas
from tenants import selectors as tenant_selectors
from tenants.billing import format_money
from tenants.models import Tenant

CHART_DAYS = 30


@dataclass(frozen=True)
class QuotaLine:
    name: str
    label: str
    used: int
    limit: int | None
    color: str = charts.DEFAULT_COLOR  # the tenant's brand colour: one palette with the header and the charts

    @property
    def used_display(self) -> str:
        return quotas.get(self.name).display(self.used)

    @property
    def limit_display(self) -> str:
        return quotas.get(self.name).display(self.limit)

    @property
    def meter(self):
        return charts.meter(self.used, self.limit, color=self.color)

    @property
    def over(self) -> bool:
        return self.limit is not None and self.used >= self.limit


def tenant_usage(*, tenant: Tenant, now: dt.datetime | None = None) -> dict:
    """The tenant's plan, calls today and over 30 days (a chart), and each quota's use; for its own admin only."""
    today = (now or timezone.now()).astimezone(dt.UTC).date()
    tenant = Tenant.objects.select_related("plan").get(pk=tenant.pk)  # fresh: the middleware's copy may be old
    plan = tenant.plan
    window = tenant_selectors.usage_window(tenant=tenant, days=CHART_DAYS, end=today)
    calls_today = window[-1][1].api_calls if window[-1][1] is not None else 0
    call_limit = quotas.limit(plan, "api_calls")
    chart = charts.bar_chart(
        [(day.strftime("%d %b"), row.api_calls if row is not None else None) for day, row in window],
        title=f"API calls per UTC day, last {CHART_DAYS} days", color=tenant.primary_color, width=640,
        height=170, limit=call_limit, label_every=6,
    )
    # The surface of the calls (issue 20.3): the ledger's mcp_calls came through the MCP server, the rest REST.
    mcp_chart = charts.bar_chart(
        [(day.strftime("%d %b"), row.mcp_calls if row is not None else None) for day, row in window],
        title=f"of which MCP tool calls, last {CHART_DAYS} days", color=tenant.primary_color, width=320,
        height=110, label_every=10,
    )
    calls_30_days = sum(row.api_calls for _, row in window if row is not None)
    mcp_calls_30_days = sum(row.mcp_calls for _, row in window if row is not None)
    brand = tenant.primary_color or charts.DEFAULT_COLOR
    lines = [
        QuotaLine("api_calls", "API calls today", calls_today, call_limit, brand),
        QuotaLine("storage", "storage", tenant.storage_bytes, quotas.limit(plan, "storage"), brand),
        QuotaLine("users", "users", get_user_model().objects.count(), quotas.limit(plan, "users"), brand),
        QuotaLine("saved_models", "saved models", StatModel.objects.count(), quotas.limit(plan, "saved_models"),
                  brand),
    ]
    return {
        "plan": plan,
        "plan_price": format_money(plan.monthly_price_cents) if plan is not None else "",
        "calls_today": calls_today,
        "calls_30_days": calls_30_days,
        "rest_calls_30_days": max(0, calls_30_days - mcp_calls_30_days),
        "mcp_calls_30_days": mcp_calls_30_days,
        "calls_chart": chart,
        "mcp_chart": mcp_chart,
        "quotas": lines,
        "storage_measured_at": tenant.storage_measured_at,
    }
