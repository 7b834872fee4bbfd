"""Reads of tenants: lists for the admin, usage windows for the charts, totals by plan, the billing export."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from tenants.models import ApiKey, Plan, PlanChange, Tenant, UsageDay
from tenants.statements import Statement, month_bounds, plan_on, tenant_statement  # noqa: F401 - read here too


def _utc_today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def tenant_list(*, plan: str | None = None, status: str | None = None) -> QuerySet[Tenant]:
    """Customer tenants, without the operator's public tenant; optionally on one plan (code, any case) or status."""
    tenants = Tenant.objects.exclude(schema_name="public").prefetch_related("domains").order_by("name")
    if plan:
        tenants = tenants.filter(plan__code__iexact=plan)
    if status:
        tenants = tenants.filter(status=status)
    return tenants


def tenant_list_with_usage(*, day: dt.date | None = None) -> QuerySet[Tenant]:
    """Customer tenants with `calls_today`: the API calls of the ledger row of `day` (UTC today by default)."""
    calls = UsageDay.objects.filter(tenant=OuterRef("pk"), date=day or _utc_today()).values("api_calls")[:1]
    return (
        Tenant.objects.exclude(schema_name="public")
        .select_related("plan")
        .annotate(calls_today=Coalesce(Subquery(calls, output_field=IntegerField()), Value(0)))
    )


def usage_window(
    *, tenant: Tenant, days: int = 30, end: dt.date | None = None
) -> list[tuple[dt.date, UsageDay | None]]:
    """The last `days` UTC days up to `end` (today), each with its ledger row or None when there is none."""
    end = end or _utc_today()
    start = end - dt.timedelta(days=days - 1)
    rows = {row.date: row for row in UsageDay.objects.filter(tenant=tenant, date__range=(start, end))}
    return [(start + dt.timedelta(days=i), rows.get(start + dt.timedelta(days=i))) for i in range(days)]


def plan_changes_of(*, tenant: Tenant) -> QuerySet[PlanChange]:
    return tenant.plan_changes.select_related("from_plan", "to_plan").order_by("-changed_at", "-id")


@dataclass(frozen=True)
class PlanTotals:
    """One line of the seed's tenant statistics, per plan."""

    plan: Plan | None
    tenants: int
    active: int
    suspended: int
    api_calls_today: int
    storage_bytes: int

    @property
    def label(self) -> str:
        return self.plan.name if self.plan else "No plan"

    @property
    def mrr_cents(self) -> int:
        """What the plan's active tenants are billed a month (suspended tenants are not billed)."""
        return self.active * self.plan.monthly_price_cents if self.plan else 0


def plan_totals(*, day: dt.date | None = None) -> list[PlanTotals]:
    """Tenants, active/suspended, API calls on `day` and storage, by plan (customer tenants only)."""
    day = day or _utc_today()
    customers = Tenant.objects.exclude(schema_name="public")
    by_plan = {
        row["plan"]: row
        for row in customers.values("plan").annotate(
            tenants=Count("pk"),
            active=Count("pk", filter=Q(status=Tenant.Status.ACTIVE)),
            suspended=Count("pk", filter=Q(status=Tenant.Status.SUSPENDED)),
            storage=Coalesce(Sum("storage_bytes"), 0),
        )
    }
    calls = dict(
        UsageDay.objects.filter(date=day, tenant__in=customers)
        .values("tenant__plan")
        .annotate(calls=Sum("api_calls"))
        .values_list("tenant__plan", "calls")
    )
    plans = list(Plan.objects.all())
    if None in by_plan:
        plans.append(None)
    totals = []
    for plan in plans:
        key = plan.pk if plan else None
        row = by_plan.get(key, {})
        totals.append(PlanTotals(
            plan=plan, tenants=row.get("tenants", 0), active=row.get("active", 0),
            suspended=row.get("suspended", 0), api_calls_today=calls.get(key) or 0,
            storage_bytes=row.get("storage", 0),
        ))
    return totals


def api_keys_of(*, tenant: Tenant) -> QuerySet[ApiKey]:
    """A tenant's own API keys: the only keys its admin may list or open."""
    return ApiKey.objects.filter(tenant=tenant)


# ------------------------------------------------------------- billing export

USAGE_EXPORT_FIELDS = (
    "tenant_schema", "tenant_name", "plan", "date", "api_calls", "peak_concurrency", "storage_bytes", "users",
    "saved_models",
)


def usage_month_rows(*, month: str) -> list[dict]:
    """One row per tenant per ledger day of the month, ordered by tenant schema then date."""
    first, last = month_bounds(month)
    days = list(
        UsageDay.objects.filter(date__range=(first, last))
        .exclude(tenant__schema_name="public")
        .select_related("tenant__plan")
        .order_by("tenant__schema_name", "date")
    )
    history: dict[int, list[PlanChange]] = {}
    for change in PlanChange.objects.filter(tenant__in={d.tenant_id for d in days}).select_related(
        "from_plan", "to_plan"
    ).order_by("changed_at", "id"):
        history.setdefault(change.tenant_id, []).append(change)
    rows = []
    for day in days:
        plan = plan_on(day.date, history.get(day.tenant_id, []), day.tenant.plan)
        rows.append({
            "tenant_schema": day.tenant.schema_name,
            "tenant_name": day.tenant.name,
            "plan": plan.code if plan else "",
            "date": day.date.isoformat(),
            "api_calls": day.api_calls,
            "peak_concurrency": day.peak_concurrency,
            "storage_bytes": day.storage_bytes,
            "users": day.users,
            "saved_models": day.saved_models,
        })
    return rows


# ------------------------------------------------------------- dashboard figures (aggregates only)


@dataclass(frozen=True)
class UsageTotals:
    """Every customer tenant's ledger rows added up per UTC day: calls, and refused calls by reason."""

    calls_by_day: list[tuple[dt.date, int]]
    refusals_today: dict[str, int]


def usage_totals(*, days: int = 30, end: dt.date | None = None) -> UsageTotals:
    """API calls on each of the last `days` UTC days up to `end` (0 on a day with none) and the refusals of `end`,
    in one aggregate statement whatever the number of tenants."""
    end = end or _utc_today()
    start = end - dt.timedelta(days=days - 1)
    columns = UsageDay.REFUSAL_COLUMNS
    rows = {
        row["date"]: row
        for row in UsageDay.objects.filter(date__range=(start, end)).exclude(tenant__schema_name="public")
        .values("date").annotate(calls=Sum("api_calls"), **{code: Sum(column) for code, column in columns.items()})
    }
    today = rows.get(end, {})
    return UsageTotals(
        calls_by_day=[(start + dt.timedelta(days=i), (rows.get(start + dt.timedelta(days=i)) or {}).get("calls") or 0)
                      for i in range(days)],
        refusals_today={code: today.get(code) or 0 for code in columns},
    )
