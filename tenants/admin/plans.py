"""The operator's plan admin: one column per quota kind (tenants.quotas) and the plan totals."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from core import charts
from core.admin import operator_site
from tenants import billing, quotas, selectors
from tenants.admin.base import _quota
from tenants.forms import PlanForm
from tenants.models import Plan


def _quota_column(kind: quotas.QuotaKind):
    """The plan admin's column of a quota kind: its limit, or Unlimited."""

    @admin.display(description=kind.column, ordering=kind.plan_field)
    def column(plan):
        return kind.display(kind.limit(plan))

    column.__name__ = f"{kind.name}_display"
    return column


@admin.register(Plan, site=operator_site)
class PlanAdmin(admin.ModelAdmin):
    change_list_template = "admin/tenants/plan/change_list.html"
    form = PlanForm

    @admin.display(description=f"monthly price ({billing.CURRENCY})", ordering="monthly_price_cents")
    def price_display(self, plan):
        return billing.format_money(plan.monthly_price_cents)

    @admin.display(description="plan", ordering="code")
    def plan_display(self, plan):
        """Name and code in one column (the code is what the API's ?plan= takes): the list fits 1,400 px."""
        return format_html('{}<br><small class="quiet">{}</small>', plan.name, plan.code)

    @admin.display(description="overage", ordering="overage_price_cents_per_1000")
    def overage_display(self, plan):
        """Calls past the daily quota: billed per 1,000 (tenants.metering admits them), or refused."""
        if not plan.overage_allowed:
            return "blocks"
        return f"{billing.format_money(plan.overage_price_cents_per_1000)} / 1,000 calls"

    def get_fields(self, request, obj=None):
        return ("code", "name", *quotas.plan_limit_fields(), "monthly_price", "overage_price", "max_task_priority",
                "max_task_batch_size", "max_task_chain_length", "max_active_task_runs")

    def get_list_display(self, request):
        # One column per quota kind (tenants.quotas), then the task cluster's limits.
        return ("plan_display", *(_quota_column(kind) for kind in quotas.kinds()), "task_priority_display",
                "max_task_batch_size", "max_task_chain_length", "active_task_runs_display", "price_display",
                "overage_display")

    @admin.display(description="highest task priority", ordering="max_task_priority")
    def task_priority_display(self, plan):
        return plan.get_max_task_priority_display()

    @admin.display(description="unfinished task runs", ordering="max_active_task_runs")
    def active_task_runs_display(self, plan):
        return _quota(plan.max_active_task_runs)

    def changelist_view(self, request, extra_context=None):
        totals = selectors.plan_totals()
        chart_tenants = charts.bar_chart([(t.label, t.tenants) for t in totals], title="Tenants by plan",
                                         width=480, label_every=1)
        chart_calls = charts.bar_chart([(t.label, t.api_calls_today) for t in totals],
                                       title="API calls today (UTC) by plan", width=480, label_every=1)
        grand = {
            "tenants": sum(t.tenants for t in totals), "active": sum(t.active for t in totals),
            "suspended": sum(t.suspended for t in totals),
            "api_calls_today": sum(t.api_calls_today for t in totals),
            "storage_bytes": sum(t.storage_bytes for t in totals),
        }
        context = {
            "plan_totals": totals, "plan_grand_total": grand,
            "plan_totals_charts": mark_safe(f"{chart_tenants} {chart_calls}"),  # noqa: S308 - built by charts
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)
