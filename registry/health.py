"""Check results: flap damping, an instance's status from its checks, marking out-of-range checks."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry import conf, kinds
from registry.events import bump_index, event
from registry.kinds.ttl import NAME as TTL
from registry.models import (
    MAX_CHECK_INTERVAL,
    MAX_CHECK_TIMEOUT,
    MAX_DEREGISTER_AFTER,
    STATUS_SEVERITY,
    CheckResult,
    HealthCheck,
    RegistryEvent,
    ServiceInstance,
    Status,
)

logger = logging.getLogger(__name__)


def refresh_status(instance: ServiceInstance, *, quiet: bool = False) -> str:
    """Maintenance, else the worst check status, else passing (an instance without checks)."""
    if instance.maintenance:
        status = Status.MAINTENANCE
    else:
        statuses = list(HealthCheck.objects.filter(instance_id=instance.pk).values_list("status", flat=True))
        status = max(statuses, key=lambda s: STATUS_SEVERITY[s]) if statuses else Status.PASSING
    if status != instance.status:
        previous = instance.status
        ServiceInstance.objects.filter(pk=instance.pk).update(status=status, updated_at=timezone.now())
        instance.status = status
        if not quiet:
            event(RegistryEvent.Kind.STATUS, instance=instance, message=f"{previous} → {status}",
                   detail={"from": previous, "to": status})
            bump_index(instance.name)
    return status


def apply_result(check: HealthCheck, *, outcome: str, output: str, duration_ms: float, now: datetime) -> None:
    """One probe outcome through Consul's flap damping, kept in the check's short history.

    A failure turns the check critical only after `failures_before_critical` in
    a row, a success turns it passing only after `successes_before_passing` in
    a row; until then it keeps its status. A warning (HTTP 429) is taken as is.
    """
    if outcome == Status.PASSING:
        check.consecutive_successes = min(check.consecutive_successes + 1, COUNTER_CAP)
        check.consecutive_failures = 0
        if check.status != Status.PASSING and check.consecutive_successes >= check.successes_before_passing:
            check.status, check.critical_since = Status.PASSING, None
    elif outcome == Status.WARNING:
        check.consecutive_successes = check.consecutive_failures = 0
        check.status, check.critical_since = Status.WARNING, None
    else:
        check.consecutive_failures = min(check.consecutive_failures + 1, COUNTER_CAP)
        check.consecutive_successes = 0
        if check.status != Status.CRITICAL and check.consecutive_failures >= check.failures_before_critical:
            check.status, check.critical_since = Status.CRITICAL, now
    check.output = (output or "")[:2000]
    check.last_checked_at = now
    kind = kinds.get(check.kind)
    if kind is not None and kind.probed:  # heartbeat-passed kinds are not due at a time
        check.next_check_at = now + timedelta(seconds=check.interval)
    check.save(update_fields=["status", "critical_since", "consecutive_failures", "consecutive_successes",
                              "output", "last_checked_at", "next_check_at"])
    CheckResult.objects.create(health_check=check, at=now, ok=outcome == Status.PASSING, status=check.status,
                               output=check.output[:500], duration_ms=duration_ms)
    keep = conf.get("HISTORY_LENGTH")
    history = CheckResult.objects.filter(health_check=check).order_by("-at", "-id")
    stale = list(history.values_list("pk", flat=True)[keep:])
    if stale:
        CheckResult.objects.filter(pk__in=stale).delete()


# Counters stop here: far above any flap threshold, far below the column's limit.
COUNTER_CAP = 1_000_000
# The output of a check the sweep found out of range starts with this; it is marked once, not at every sweep.
OUT_OF_RANGE = "out of range: "


def out_of_range_q() -> Q:
    """Checks whose stored durations lie outside the bounds (NaN included: PostgreSQL orders it above all).

    The database's constraints keep such rows out since migration 0003; this
    guards the sweep against any row that got past them (a restored dump,
    constraints dropped by hand): those are marked, never computed with.
    """
    return (~Q(interval__gt=0, interval__lte=MAX_CHECK_INTERVAL) | ~Q(timeout__gt=0, timeout__lte=MAX_CHECK_TIMEOUT)
            | Q(deregister_critical_after__lt=0) | Q(deregister_critical_after__gt=MAX_DEREGISTER_AFTER))


def out_of_range_reason(check: HealthCheck) -> str:
    problems = []
    if not 0 < check.interval <= MAX_CHECK_INTERVAL:
        problems.append(f"{'TTL' if check.kind == TTL else 'interval'} {check.interval:g} s "
                        f"(allowed: up to {MAX_CHECK_INTERVAL:g} s)")
    if not 0 < check.timeout <= MAX_CHECK_TIMEOUT:
        problems.append(f"timeout {check.timeout:g} s (allowed: up to {MAX_CHECK_TIMEOUT:g} s)")
    grace = check.deregister_critical_after
    if grace is not None and not 0 <= grace <= MAX_DEREGISTER_AFTER:
        problems.append(f"grace {grace:g} s (allowed: up to {MAX_DEREGISTER_AFTER:g} s)")
    return OUT_OF_RANGE + "; ".join(problems) + ". Register the instance again with values in range."


def checks_mark_out_of_range(*, now: datetime | None = None) -> int:
    """Mark critical every check whose stored durations are out of range, once, with the reason; log each."""
    now = now or timezone.now()
    marked = 0
    rows = (HealthCheck.objects.filter(out_of_range_q())
            .exclude(status=Status.CRITICAL, output__startswith=OUT_OF_RANGE).values_list("pk", "instance_id"))
    for check_id, instance_id in list(rows):
        try:
            with transaction.atomic():
                check = lock_instance_then(HealthCheck.objects.filter(pk=check_id), instance_id)
                if check is None:
                    continue
                reason = out_of_range_reason(check)
                if check.status != Status.CRITICAL:
                    check.status, check.critical_since = Status.CRITICAL, now
                check.output, check.next_check_at, check.last_checked_at = reason, None, now
                check.save(update_fields=["status", "critical_since", "output", "next_check_at", "last_checked_at"])
                event(RegistryEvent.Kind.INVALID, instance=check.instance, message=f"check {check.name!r}: {reason}",
                       detail={"check": check.name, "interval": repr(check.interval), "timeout": repr(check.timeout),
                               "deregister_critical_after": repr(check.deregister_critical_after)})
                refresh_status(check.instance)
            logger.warning("Health check %s of %s is %s", check.name, check.instance.service_id, reason)
            marked += 1
        except Exception:  # noqa: BLE001 - one row never stops the sweep
            logger.exception("Sweep: could not mark health check %s", check_id)
    return marked


def lock_instance_then(check_queryset, instance_id: int):
    """Lock an instance, then one of its checks: the one lock order every writer here keeps.

    Heartbeats, registration and deregistration lock the instance before its
    checks; a sweep locking a check first could deadlock with them.
    """
    if not ServiceInstance.objects.select_for_update().filter(pk=instance_id).exists():
        return None
    return check_queryset.select_for_update(of=("self",)).select_related("instance").first()


def check_record(*, check_id: int, outcome: str, output: str = "", duration_ms: float = 0.0,
                 now: datetime | None = None) -> HealthCheck | None:
    """Apply one probe outcome to a check and its instance. None when the check is gone meanwhile."""
    instance_id = HealthCheck.objects.filter(pk=check_id).values_list("instance_id", flat=True).first()
    if instance_id is None:
        return None
    with transaction.atomic():
        check = lock_instance_then(HealthCheck.objects.filter(pk=check_id), instance_id)
        if check is None:
            return None
        apply_result(check, outcome=outcome, output=output, duration_ms=duration_ms, now=now or timezone.now())
        refresh_status(check.instance)
        return check
