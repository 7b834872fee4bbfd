"""A tenant's monthly statement, computed from its plan history and the one usage ledger (UsageDay).

- Base: each plan's monthly price pro-rated by the days the tenant spent on it in the month (from its
  creation, up to today in the running month). A plan change takes effect on the day it was made.
- Overage: on each ledger day, the calls past the daily quota of the plan in force that day, priced at that
  plan's overage price per 1,000 calls. A plan without one refuses those calls (429), so it bills none.
- Calls by surface: the ledger's `api_calls`, of which `mcp_calls` came through MCP, the rest through REST.
Money is in integer cents, rounded half up once per line (tenants.billing formats it).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.utils import timezone

from tenants import quotas
from tenants.models import Plan, PlanChange, Tenant, UsageDay

# Months a statement may be asked for: past these the question is a typo, not a bill.
FIRST_YEAR, LAST_YEAR = 2000, 2999


def month_bounds(month: str) -> tuple[dt.date, dt.date]:
    """First and last day of a 'YYYY-MM' month; ValueError when it is not one."""
    try:
        if not isinstance(month, str) or len(month) != 7:
            raise ValueError
        first = dt.datetime.strptime(month, "%Y-%m").date()
    except ValueError:
        raise ValueError(f"{str(month)[:20]!r} is not a month; use YYYY-MM, like 2026-11.") from None
    if not FIRST_YEAR <= first.year <= LAST_YEAR:
        raise ValueError(f"{month!r} is not a month we bill; use a year from {FIRST_YEAR} to {LAST_YEAR}.")
    return first, first.replace(day=calendar.monthrange(first.year, first.month)[1])


def plan_on(day: dt.date, changes: list[PlanChange], current: Plan | None) -> Plan | None:
    """The plan in force at the end of `day` by the plan history, oldest change first (bills follow it)."""
    in_force = None
    for change in changes:
        if change.changed_at.astimezone(dt.UTC).date() <= day:
            in_force = change.to_plan
        else:
            if in_force is None:  # the day predates the first recorded change
                in_force = change.from_plan or change.to_plan
            break
    return in_force if in_force is not None else current


def _cents(numerator: int, denominator: int) -> int:
    return int((Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class StatementLine:
    """The base price of one run of days on one plan."""

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
class OverageLine:
    """The calls past the daily quota on the days of one plan, and what they cost."""

    plan: Plan
    days: int  # ledger days with calls past the quota
    calls: int  # calls past the quota on those days
    price_cents_per_1000: int
    amount_cents: int

    @property
    def label(self) -> str:
        return self.plan.name


@dataclass(frozen=True)
class Statement:
    """What one tenant owes for one month."""

    tenant: Tenant
    month: str
    first: dt.date
    last: dt.date
    days_in_month: int
    lines: list[StatementLine]
    overage_lines: list[OverageLine]
    api_calls: int
    mcp_calls: int
    refused_calls: int

    @property
    def rest_calls(self) -> int:
        return max(0, self.api_calls - self.mcp_calls)

    @property
    def calls_by_surface(self) -> dict[str, int]:
        return {"rest": self.rest_calls, "mcp": self.mcp_calls}

    @property
    def base_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines)

    @property
    def overage_cents(self) -> int:
        return sum(line.amount_cents for line in self.overage_lines)

    @property
    def total_cents(self) -> int:
        return self.base_cents + self.overage_cents


def _history(tenant: Tenant) -> list[PlanChange]:
    return list(PlanChange.objects.filter(tenant=tenant).select_related("from_plan", "to_plan")
                .order_by("changed_at", "id"))


def _base_lines(tenant: Tenant, changes: list[PlanChange], first: dt.date, last: dt.date, today: dt.date,
                days_in_month: int) -> list[StatementLine]:
    start = max(first, tenant.created_at.astimezone(dt.UTC).date()) if tenant.created_at else first
    end = min(last, today)
    lines: list[StatementLine] = []
    day = start
    while day <= end:
        plan = plan_on(day, changes, tenant.plan)
        run_first = day
        while day < end and plan_on(day + dt.timedelta(days=1), changes, tenant.plan) == plan:
            day += dt.timedelta(days=1)
        days = (day - run_first).days + 1
        price = plan.monthly_price_cents if plan else 0
        lines.append(StatementLine(plan=plan, first=run_first, last=day, days=days, monthly_price_cents=price,
                                   amount_cents=_cents(price * days, days_in_month)))
        day += dt.timedelta(days=1)
    return lines


def _overage_lines(ledger: list[UsageDay], changes: list[PlanChange], current: Plan | None) -> list[OverageLine]:
    by_plan: dict[int, list] = {}  # plan id -> [plan, days, calls]
    for row in ledger:
        plan = plan_on(row.date, changes, current)
        if plan is None or not plan.overage_allowed:
            continue
        limit = quotas.limit(plan, "api_calls")
        over = 0 if limit is None else max(0, row.api_calls - limit)
        if over:
            entry = by_plan.setdefault(plan.pk, [plan, 0, 0])
            entry[1] += 1
            entry[2] += over
    return [OverageLine(plan=plan, days=days, calls=calls, price_cents_per_1000=plan.overage_price_cents_per_1000,
                        amount_cents=_cents(calls * plan.overage_price_cents_per_1000, 1000))
            for plan, days, calls in by_plan.values()]


def tenant_statement(*, tenant: Tenant, month: str, today: dt.date | None = None) -> Statement:
    """The month's statement of `tenant` (ValueError for a month that is not one). Reads only its own rows."""
    first, last = month_bounds(month)
    today = today or timezone.now().astimezone(dt.UTC).date()
    changes = _history(tenant)
    ledger = list(UsageDay.objects.filter(tenant=tenant, date__range=(first, last)).order_by("date"))
    return Statement(
        tenant=tenant, month=first.strftime("%Y-%m"), first=first, last=last, days_in_month=(last - first).days + 1,
        lines=_base_lines(tenant, changes, first, last, today, (last - first).days + 1),
        overage_lines=_overage_lines(ledger, changes, tenant.plan),
        api_calls=sum(row.api_calls for row in ledger), mcp_calls=sum(row.mcp_calls for row in ledger),
        refused_calls=sum(row.refused_daily_quota + row.refused_burst + row.refused_concurrency for row in ledger),
    )
