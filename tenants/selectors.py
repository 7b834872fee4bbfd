"""Reads of tenants: lists for the admin, usage windows for the charts, totals by plan, the billing export."""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from tenants.models import ApiKey, Plan, PlanChange, Tenant, UsageDay


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


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of a 'YYYY-MM' month; ValueError when it is not one."""
    try:
        first = dt.datetime.strptime(month, "%Y-%m").date()
    except (TypeError, ValueError):
        raise ValueError(f"{month!r} is not a month; use YYYY-MM, like 2026-11.") from None
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def _plan_on(day: dt.date, changes: list[PlanChange], current: Plan | None) -> Plan | None:
    """The plan in force at the end of `day` by the plan history (bills follow the plan of each day)."""
    in_force = None
    for change in changes:  # oldest first
        if change.changed_at.astimezone(dt.UTC).date() <= day:
            in_force = change.to_plan
        else:
            if in_force is None:  # the day predates the first recorded change
                in_force = change.from_plan or change.to_plan
            break
    return in_force if in_force is not None else current


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
        plan = _plan_on(day.date, history.get(day.tenant_id, []), day.tenant.plan)
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


# ------------------------------------------------------------- monthly statement


@dataclass(frozen=True)
class StatementLine:
    plan: Plan | None
    first: dt.date
    last: dt.date
    days: int
    monthly_price_cents: int
    amount_cents: int

    @property
    def label(self) -> str:
        return self.plan.name if self.plan else "No plan"


@dataclass(frozen=True)
class Statement:
    """What one tenant owes for one month, from its plan history and the usage ledger."""

    tenant: Tenant
    month: str
    first: dt.date
    last: dt.date
    days_in_month: int
    lines: list[StatementLine]
    api_calls: int
    refused_calls: int
    overage_cents: int

    @property
    def base_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)

    @property
    def total_cents(self) -> int:
        return self.base_cents + self.overage_cents


def tenant_statement(*, tenant: Tenant, month: str, today: dt.date | None = None) -> Statement:
    """The month's statement: each plan's price pro-rated by the days the tenant spent on it (from its
    creation, up to today for the running month), the month's calls from the ledger, and the total.

    Plans block calls past their quota (429), so there is no overage to bill: refused calls are listed,
    never charged.
    """
    first, last = month_bounds(month)
    today = today or _utc_today()
    days_in_month = (last - first).days + 1
    start = max(first, tenant.created_at.astimezone(dt.UTC).date()) if tenant.created_at else first
    end = min(last, today)
    changes = list(PlanChange.objects.filter(tenant=tenant).select_related("from_plan", "to_plan")
                   .order_by("changed_at", "id"))
    lines: list[StatementLine] = []
    day = start
    while day <= end:
        plan = _plan_on(day, changes, tenant.plan)
        run_first = day
        while day + dt.timedelta(days=1) <= end and _plan_on(day + dt.timedelta(days=1), changes,
                                                              tenant.plan) == plan:
            day += dt.timedelta(days=1)
        days = (day - run_first).days + 1
        price = plan.monthly_price_cents if plan else 0
        lines.append(StatementLine(plan=plan, first=run_first, last=day, days=days, monthly_price_cents=price,
                                   amount_cents=round(price * days / days_in_month)))
        day += dt.timedelta(days=1)
    usage = UsageDay.objects.filter(tenant=tenant, date__range=(first, last)).aggregate(
        calls=Coalesce(Sum("api_calls"), 0),
        refused=Coalesce(Sum("refused_daily_quota"), 0) + Coalesce(Sum("refused_burst"), 0)
        + Coalesce(Sum("refused_concurrency"), 0))
    return Statement(tenant=tenant, month=month, first=first, last=last, days_in_month=days_in_month, lines=lines,
                     api_calls=usage["calls"], refused_calls=usage["refused"], overage_cents=0)
