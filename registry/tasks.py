"""The registry's tasks, registered with the task layer; the health sweep and the Consul sync are system jobs.

Each is declared with its timetable (tasks.registry.system_job): the reconcile after every migrate puts it on
the schedules page, and each time it fires it is a TaskRun like any other (its result in the admin).
"""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from core.locks import advisory_lock, lock_key
from registry import conf
from tasks.registry import system_job

logger = logging.getLogger(__name__)

# One sweeper at a time across every cluster and worker (core.locks).
SWEEP_LOCK_KEY = lock_key("registry-sweep")


def _seconds_to_next_event() -> float | None:
    """Until the next probed check is due or the next passing TTL can expire; None when nothing is pending."""
    from django.db.models import Min

    from registry import kinds, sweeps
    from registry.models import HealthCheck, Status

    due = HealthCheck.objects.filter(kind__in=kinds.probed()).aggregate(at=Min("next_check_at"))["at"]
    expiry = sweeps.ttl_checks().exclude(status=Status.CRITICAL).aggregate(at=Min("expiry"))["at"]
    upcoming = [at for at in (due, expiry) if at is not None]
    if not upcoming:
        return None
    return max(0.0, (min(upcoming) - timezone.now()).total_seconds())


def _sweep_within(budget: float | None) -> dict:
    """Sweep the registry, and again whenever something falls due within `budget` seconds.

    django-q2's scheduler wakes up about every 30 s, so a check interval of
    10 s only holds if one scheduled run keeps sweeping in between: it sleeps
    until the next check is due or the next TTL can expire, and returns as soon
    as nothing is due within the budget (SWEEP_BUDGET_SECONDS), so a registry
    of slow checks holds a worker for one sweep only. Another sweeper already
    running (a second cluster, an overlapping schedule) makes this run return.
    """
    from registry import selfreg, sweeps

    budget = conf.get("SWEEP_BUDGET_SECONDS") if budget is None else budget
    with advisory_lock("registry-sweep", wait=False) as acquired:
        if not acquired:
            return {"skipped": "another sweep is running"}
        deadline = time.monotonic() + budget
        totals = {"sweeps": 0, "probed": 0, "ttl_expired": 0, "evicted": []}
        while True:
            selfreg.cluster_heartbeat()
            report = sweeps.health_sweep()
            totals["sweeps"] += 1
            totals["probed"] += report.probed
            totals["ttl_expired"] += report.ttl_expired
            totals["evicted"] += report.evicted
            remaining = deadline - time.monotonic()
            wait = _seconds_to_next_event()
            if wait is None or wait >= remaining:
                break
            time.sleep(max(0.05, wait))
        sweeps.events_prune()
    return totals


def _schedule_on() -> bool:
    # SERVICES["AUTO_SCHEDULE"] = False keeps the registry's schedules off the schedules page (the next reconcile
    # removes them); unset, they are on wherever the system schedules are (tasks.conf: not under the tests).
    return conf.get("AUTO_SCHEDULE") is not False


# Every 30 s: a six-field cron whose last field is the seconds (croniter's, which TaskSchedule's validation and
# django-q2's scheduler both use). An interval schedule counts whole minutes, too coarse for checks of 10 s.
# Timeout 90 s: a budget of at most 60 s plus one sweep, within any cluster whose retry exceeds 100 s.
@system_job("registry.health_sweep", cron="* * * * * */30", schedule_name="services: health sweep",
            enabled=_schedule_on, timeout=90,
            schema={"type": "object", "additionalProperties": False,
                    "properties": {"budget": {"type": "number", "minimum": 0, "maximum": 60}}})
def health_sweep(ctx, budget: float | None = None) -> dict:
    """Sweep the registry's health checks (and keep sweeping for `budget` seconds, SWEEP_BUDGET_SECONDS unset)."""
    return _sweep_within(budget)


@system_job("registry.consul_sync", every_minutes=1, schedule_name="services: Consul sync",
            enabled=lambda: _schedule_on() and bool(conf.get("CONSUL_URL")), timeout=90)
def consul_sync(ctx) -> dict:
    """Two-way sync with the Consul agent at CONSUL_URL (nothing to do when unset)."""
    from registry import consul

    url = conf.get("CONSUL_URL")
    if not url:
        return {"skipped": "CONSUL_URL is not set"}
    with consul.ConsulClient(url, token=conf.get("CONSUL_TOKEN") or None) as client:
        return consul.consul_sync(client=client).as_dict()
