"""What the operator's dashboard shows: the figures of console.selectors as cards, each linked to its list.

Presentation only (labels, links, charts); every number comes from `selectors.dashboard()`.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django.urls import NoReverseMatch, reverse

from console import selectors
from core import charts
from tenants.billing import format_money

REFUSAL_LABELS = {"daily_quota_exceeded": "daily quota", "burst_limit_exceeded": "burst limit",
                  "concurrency_limit_exceeded": "concurrency"}


def _url(site: str, url_name: str, **query) -> str:
    try:
        url = reverse(f"{site}:{url_name}")
    except NoReverseMatch:
        return ""
    query = {k: v for k, v in query.items() if v is not None}
    return f"{url}?{urlencode(query)}" if query else url


def dashboard_context(*, site: str = "operator_admin", now: dt.datetime | None = None) -> dict:
    board = selectors.dashboard(now=now)
    today = board.now.astimezone(dt.UTC).date()
    tomorrow = today + dt.timedelta(days=1)
    month_ago = today - dt.timedelta(days=29)
    hour_ago = (board.now - dt.timedelta(hours=1)).astimezone(dt.UTC).replace(microsecond=0)
    tenants = "tenants_tenant_changelist"
    runs = "tasks_taskrun_changelist"
    plans = [{"label": p.label, "tenants": p.tenants, "active": p.active, "suspended": p.suspended,
              "calls": p.api_calls_today,
              "url": _url(site, tenants, plan__id__exact=p.plan.pk if p.plan else None,
                          plan__isnull="True" if p.plan is None else None),
              "suspended_url": _url(site, tenants, plan__id__exact=p.plan.pk if p.plan else None,
                                    status__exact="suspended")}
             for p in board.plans]
    chart = charts.bar_chart([(day.strftime("%d %b"), calls) for day, calls in board.calls_by_day],
                             title="API calls per UTC day, last 30 days", width=620, height=160, label_every=6)
    queue = [{"label": label, "count": count,
              "url": _url(site, runs, status__in="queued,claimed,retrying", priority__exact=value)}
             for (label, count), value in zip(board.queue_depth.items(), (3, 2, 1, 0), strict=False)]
    services = [{**row, "url": _url(site, "services_serviceinstance_changelist", name__exact=row["name"]),
                 "failing_url": _url(site, "services_serviceinstance_changelist", name__exact=row["name"],
                                     status__exact="critical")}
                for row in board.services]
    failing = [{**row, "url": reverse(f"{site}:services_serviceinstance_change", args=[row["instance_pk"]])}
               for row in board.failing_checks]
    migrations = board.migrations
    return {
        "board": board,
        "mrr": format_money(board.mrr_cents),
        "plans": plans,
        "calls_chart": chart,
        "refusals": [{"code": code, "label": REFUSAL_LABELS.get(code, code), "count": count,
                      "url": _url(site, "tenants_usageday_changelist", date__gte=today.isoformat(),
                                  date__lt=tomorrow.isoformat())}
                     for code, count in board.refusals.items()],
        "queue": queue,
        "links": {
            "tenants": _url(site, tenants),
            "active": _url(site, tenants, status__exact="active"),
            "suspended": _url(site, tenants, status__exact="suspended"),
            "plans": _url(site, "tenants_plan_changelist"),
            "calls_today": _url(site, "tenants_usageday_changelist", date__gte=today.isoformat(),
                                date__lt=tomorrow.isoformat()),
            "calls_30": _url(site, "tenants_usageday_changelist", date__gte=month_ago.isoformat(),
                             date__lt=tomorrow.isoformat()),
            "running": _url(site, runs, status__exact="running"),
            "failed": _url(site, runs, status__exact="failed", finished_at__gte=hour_ago.isoformat()),
            "workers": _url(site, "tasks_workerprocess_changelist"),  # the live ones first
            "cluster_stats": _url(site, "tasks_workers"),
            "services": _url(site, "services_serviceinstance_changelist"),
            "critical": _url(site, "services_serviceinstance_changelist", status__exact="critical"),
            "migrations": _url(site, "schemas_migration_summary") or _url(site, "schemas_migration_matrix"),
            "pending": _url(site, "schemas_migration_matrix", problems="1"),
            "config": _url(site, "configuration_configchange_changelist",
                           changed_at__gte=dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC).isoformat()),
            "pool": _url(site, "schemas_migrationrecord_changelist", kind="spare"),
        },
        "services": services,
        "failing_checks": failing,
        "migrations": migrations,
    }
