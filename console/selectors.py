"""The operator dashboard's figures: a fixed number of aggregate queries, whatever the number of tenants.

Every figure comes from the owning app's selectors (tenants, tasks, services,
schemas, configuration); this module only puts them side by side. No query
here loops over tenants or schemas: with 1,000 tenants the dashboard runs the
same dozen statements as with two (`bench/dashboard.py` measures it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.utils import timezone

from configuration import selectors as configuration_selectors
from registry import selectors as service_selectors
from schemas import selectors as schema_selectors
from tasks import selectors as task_selectors
from tenants import selectors as tenant_selectors
from tenants.provisioning import pool_counts


@dataclass
class Dashboard:
    now: dt.datetime
    plans: list  # tenants.selectors.PlanTotals, one per plan
    tenants_total: int
    tenants_active: int
    tenants_suspended: int
    mrr_cents: int
    calls_today: int
    calls_by_day: list[tuple[dt.date, int]]
    refusals: dict[str, int]
    queue_depth: dict[str, int]
    running: int
    failed_last_hour: int
    workers: dict
    services: list[dict]
    failing_checks: list[dict]
    migrations: dict
    config_changes_today: int
    pool_ready: int
    pool_stale: int
    extra: dict = field(default_factory=dict)

    @property
    def calls_30_days(self) -> int:
        return sum(calls for _, calls in self.calls_by_day)

    @property
    def refusals_total(self) -> int:
        return sum(self.refusals.values())

    @property
    def queued_total(self) -> int:
        return sum(self.queue_depth.values())


def dashboard(*, now: dt.datetime | None = None) -> Dashboard:
    """Every figure of the operator's dashboard, read in one pass of aggregate queries."""
    now = now or timezone.now()
    today = now.astimezone(dt.UTC).date()
    plans = tenant_selectors.plan_totals(day=today)
    usage = tenant_selectors.usage_totals(days=30, end=today)
    tasks = task_selectors.task_figures(since=now - dt.timedelta(hours=1))
    ready, stale = pool_counts()
    return Dashboard(
        now=now,
        plans=plans,
        tenants_total=sum(p.tenants for p in plans),
        tenants_active=sum(p.active for p in plans),
        tenants_suspended=sum(p.suspended for p in plans),
        mrr_cents=sum(p.mrr_cents for p in plans),
        calls_today=usage.calls_by_day[-1][1],
        calls_by_day=usage.calls_by_day,
        refusals=usage.refusals_today,
        queue_depth=tasks["queue_depth"],
        running=tasks["running"],
        failed_last_hour=tasks["failed"],
        workers={**task_selectors.workers_alive(), "busy": tasks["busy_workers"]},
        services=list(service_selectors.service_summary()),
        failing_checks=service_selectors.failing_checks(),
        migrations=schema_selectors.ledger_summary_cached(),
        config_changes_today=configuration_selectors.changes_since(
            since=dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)),
        pool_ready=ready,
        pool_stale=stale,
    )
