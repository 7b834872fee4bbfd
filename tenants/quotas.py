"""Quota kinds: the one registry of what a plan limits, how each limit is measured and enforced, and its label.

Everything that lists quotas reads it: the plan's model fields (`plan_field_definitions`, added to
tenants.models.Plan), the plan admin's columns, the plans API, the usage refresh (row counts and
storage), the usage export, the row-quota triggers (`RowQuotaTrigger` in a tenant app's migration),
the admin's pre-checks (`row_quota_refusal`) and the admission (tenants.metering reads `limit`).
After Sentry's `quotas/base.py`: a quota is configuration (a `QuotaKind`: what is counted, in which
window, with which limit), apart from the machinery that counts it (tenants.metering, the triggers).

Three measures:
- RATE:  counted as it happens, per window, by the admission (API calls per UTC day);
- ROWS:  rows of a table in the tenant's schema, refused at the limit by a trigger (users, saved models);
- GAUGE: a level measured now and then, or held at once (storage, concurrent requests).

Adding a kind: its `QuotaKind(...)` in KINDS below (with `field=` for its plan column) and one
migration that adds the column (`manage.py makemigrations tenants`); a ROWS kind's trigger is a
`RowQuotaTrigger("<name>")` in a migration of the app that owns the table (tenant apps).
tests/tenants/test_quota_kinds.py shows a kind added from one file.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from django.db import migrations, models
from django.template.defaultfilters import filesizeformat

UNLIMITED = "Unlimited"
QUOTA_SQLSTATE = "CQ001"  # raised by public.courtside_enforce_row_quota (tenants.0002)


class Measure(enum.StrEnum):
    RATE = "rate"
    ROWS = "rows"
    GAUGE = "gauge"


@dataclass(frozen=True)
class QuotaKind:
    name: str                     # stable id: "api_calls", "users"
    plan_field: str               # the Plan column holding the limit; NULL means unlimited
    measure: Measure
    label: str                    # what is counted, plural, as messages word it: "users", "saved models"
    column: str                   # the plan admin's column header: "API calls per day"
    usage_field: str | None = None  # the UsageDay column recording it, if the ledger keeps it
    table: str | None = None      # ROWS: the table in each tenant schema whose rows are counted
    trigger: str | None = None    # ROWS: the name of its row-quota trigger
    as_bytes: bool = False        # shown as a file size
    field: Callable[[], models.Field] | None = None  # the plan column's definition, when the registry declares it

    def limit(self, plan) -> int | None:
        """The plan's limit; None (unlimited) for no plan or an empty field."""
        return getattr(plan, self.plan_field, None) if plan is not None else None

    def display(self, value) -> str:
        if value is None:
            return UNLIMITED
        return filesizeformat(value) if self.as_bytes else f"{value:,}"


def _limit_field(verbose_name: str, help_text: str, big: bool = False) -> Callable[[], models.Field]:
    field_class = models.PositiveBigIntegerField if big else models.PositiveIntegerField
    return lambda: field_class(verbose_name, null=True, blank=True, help_text=help_text)


KINDS: dict[str, QuotaKind] = {}


def register(kind: QuotaKind) -> QuotaKind:
    """Add a kind to the registry (or replace one of the same name); returns it."""
    KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    KINDS.pop(name, None)


def kinds(*measures: Measure) -> list[QuotaKind]:
    """The registered kinds in their order, of the given measures (all when none is given)."""
    return [kind for kind in KINDS.values() if not measures or kind.measure in measures]


def get(name: str) -> QuotaKind:
    return KINDS[name]


def limit(plan, name: str) -> int | None:
    return KINDS[name].limit(plan)


for _kind in (
    QuotaKind("api_calls", "api_calls_per_day", Measure.RATE, "API calls", "API calls per day",
              usage_field="api_calls",
              field=_limit_field("API calls per UTC day", "Empty means unlimited.", big=True)),
    QuotaKind("storage", "storage_bytes", Measure.GAUGE, "bytes of storage", "storage",
              usage_field="storage_bytes", as_bytes=True,
              field=_limit_field("storage (bytes)", "Size of the tenant's schema. Empty means unlimited.", big=True)),
    QuotaKind("users", "max_users", Measure.ROWS, "users", "users", usage_field="users",
              table="auth_user", trigger="courtside_user_quota",
              field=_limit_field("users", "Empty means unlimited.")),
    QuotaKind("saved_models", "max_models", Measure.ROWS, "saved models", "saved models", usage_field="saved_models",
              table="league_statmodel", trigger="courtside_model_quota",
              field=_limit_field("saved models", "Projection models per tenant. Empty means unlimited.")),
    QuotaKind("concurrency", "max_concurrent_requests", Measure.GAUGE, "concurrent API requests",
              "concurrent requests", usage_field="peak_concurrency",
              field=_limit_field("concurrent requests", "API requests in flight. Empty means unlimited.")),
):
    register(_kind)


# ----------------------------------------------------------------- the plan's columns

def plan_field_definitions() -> dict[str, models.Field]:
    """{plan field: a new Field} of every kind that declares its plan column (tenants.models adds them to Plan)."""
    return {kind.plan_field: kind.field() for kind in kinds() if kind.field is not None}


def plan_limit_fields() -> list[str]:
    return [kind.plan_field for kind in kinds()]


# ----------------------------------------------------------------- measuring

def usage_fields() -> list[str]:
    """UsageDay columns the ledger keeps for the kinds, in registry order."""
    return [kind.usage_field for kind in kinds() if kind.usage_field]


def measured_usage_fields() -> list[str]:
    """The usage columns the usage refresh measures (storage and row counts), in registry order; the export's."""
    return [kind.usage_field for kind in kinds() if kind.usage_field and (
        kind.measure == Measure.ROWS or kind.name == "storage")]


def row_counts_sql(schema_name: str, quote_name: Callable[[str], str]) -> tuple[str, list[QuotaKind]]:
    """One statement counting every ROWS kind's table in a schema, and the kinds in its column order."""
    counted = kinds(Measure.ROWS)
    parts = [f"(SELECT count(*) FROM {quote_name(schema_name)}.{quote_name(kind.table)})" for kind in counted]
    return "SELECT " + ", ".join(parts), counted


# ----------------------------------------------------------------- enforcing rows

def row_quota_refusal(*, plan, name: str, count: int) -> str | None:
    """The admin's pre-check of a ROWS kind: the message that refuses one more row, or None when it fits.

    Worded as the trigger words its refusal; the trigger stays the authority (two admins can pass this at once).
    """
    kind = KINDS[name]
    allowed = kind.limit(plan)
    if allowed is None or count < allowed:
        return None
    return f"The {plan.name} plan allows {allowed} {kind.label}; this tenant has {count}."


def row_quota_trigger_sql(kind: QuotaKind) -> tuple[str, str]:
    """(create, drop) of a ROWS kind's trigger on its table in the current schema."""
    create = (f"CREATE TRIGGER {kind.trigger} BEFORE INSERT ON {kind.table} FOR EACH ROW "
              f"EXECUTE FUNCTION public.courtside_enforce_row_quota('{kind.plan_field}', '{kind.label}')")
    return create, f"DROP TRIGGER IF EXISTS {kind.trigger} ON {kind.table}"


class RowQuotaTrigger(migrations.RunSQL):
    """Migration operation: the row-quota trigger of a ROWS kind, in every tenant schema the migration runs in.

    It reads the kind when the migration loads: once a kind's trigger has shipped, keep its table, trigger
    name, plan field and label (a change is a new kind and a new migration).
    """

    def __init__(self, name: str, **kwargs):
        create, drop = row_quota_trigger_sql(KINDS[name])
        super().__init__(create, drop, **kwargs)
