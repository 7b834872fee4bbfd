"""The health sweep: due probes, TTL expiry, self-preservation, eviction, aged Consul mirrors; its schedules."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, FloatField, Q, Value
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from core.errors import DomainError
from registry import conf, kinds, probes
from registry.events import bump_index, event
from registry.health import (
    COUNTER_CAP,
    check_record,
    checks_mark_out_of_range,
    lock_instance_then,
    out_of_range_q,
    refresh_status,
)
from registry.kinds.ttl import NAME as TTL
from registry.models import (
    MAX_CHECK_INTERVAL,
    CheckResult,
    HealthCheck,
    RegistryEvent,
    SelfPreservation,
    ServiceInstance,
    Source,
    Status,
)
from registry.registration import service_deregister

logger = logging.getLogger(__name__)


@dataclass
class SweepReport:
    probed: int = 0
    ttl_expired: int = 0
    evicted: list = field(default_factory=list)
    self_preservation: dict = field(default_factory=dict)
    out_of_range: int = 0
    consul_expired: int = 0

    def as_dict(self) -> dict:
        return {"probed": self.probed, "ttl_expired": self.ttl_expired, "evicted": self.evicted,
                "self_preservation": self.self_preservation, "out_of_range": self.out_of_range,
                "consul_expired": self.consul_expired}


def ttl_checks():
    """Our judgeable TTL checks, annotated with `expiry`: last heartbeat (or registration) plus the TTL, in SQL.

    The TTL is clamped inside the expression as well as filtered: PostgreSQL
    may compute the expression before it applies the filter, and one row's
    `interval out of range` would fail the statement for every row.
    """
    ttl = Least(Greatest(F("interval"), Value(0.0)), Value(MAX_CHECK_INTERVAL), output_field=FloatField())
    return (
        HealthCheck.objects.filter(kind=TTL, instance__source=Source.COURTSIDE)
        .exclude(out_of_range_q())
        .annotate(expiry=ExpressionWrapper(
            Coalesce(F("instance__last_heartbeat"), F("instance__registered_at")) + ttl * Value(timedelta(seconds=1)),
            output_field=DateTimeField(),
        ))
    )


def self_preservation_evaluate(*, now: datetime | None = None) -> dict[str, bool]:
    """Eureka's rule, per service: enter when too many heartbeats lapsed within one window, leave on recovery.

    Counted over instances (not in maintenance) with a TTL check whose
    heartbeat expiry falls after the window's start: those that lapsed within
    the window are `missed`. Instances dead for longer than the window count in
    neither, so an old death cannot hold a service in self-preservation forever.
    One lapse is never enough (SELF_PRESERVATION_MIN_MISSED, 2): in a small
    service one death is already above any share, and is a death, not a
    partition, so it turns critical at the first sweep past its TTL.
    """
    now = now or timezone.now()
    window = timedelta(seconds=conf.get("SELF_PRESERVATION_WINDOW"))
    threshold = conf.get("SELF_PRESERVATION_THRESHOLD")
    minimum = conf.get("SELF_PRESERVATION_MIN_INSTANCES")
    minimum_missed = conf.get("SELF_PRESERVATION_MIN_MISSED")
    rows = (
        ttl_checks().filter(instance__maintenance=False, expiry__gt=now - window)
        .values("instance__name").order_by()
        .annotate(total=Count("id"), missed=Count("id", filter=Q(expiry__lte=now)))
        .values_list("instance__name", "total", "missed")
    )
    counts = {name: [total, missed] for name, total, missed in rows}
    states = {state.service_name: state for state in SelfPreservation.objects.select_for_update()}
    result = {}
    for name in set(counts) | {name for name, state in states.items() if state.active}:
        total, missed = counts.get(name, [0, 0])
        active = total >= minimum and missed >= minimum_missed and missed / total > threshold
        state = states.get(name) or SelfPreservation(service_name=name)
        if active != state.active:
            state.since = now if active else None
            event(RegistryEvent.Kind.SELF_PRESERVATION_ON if active else RegistryEvent.Kind.SELF_PRESERVATION_OFF,
                   service_name=name, message=f"{missed} of {total} instances missed their heartbeats",
                   detail={"missed": missed, "total": total, "threshold": threshold})
            # No "name: value" shape here: the secret-masking log filter would mask the count after "…-api:".
            logger.warning("Self-preservation %s for service %s (%s of %s instances missed heartbeats)",
                           "started" if active else "ended", name, missed, total)
        state.active, state.missed, state.total, state.evaluated_at = active, missed, total, now
        state.save()
        result[name] = active
    return result


def ttl_expire(*, now: datetime | None = None, protected: set[str] = frozenset()) -> int:
    """Turn critical every TTL check whose heartbeat is overdue, except in services under self-preservation."""
    now = now or timezone.now()
    expired = 0
    overdue = (ttl_checks().filter(expiry__lte=now).exclude(status=Status.CRITICAL)
               .exclude(instance__name__in=protected))
    for check_id, instance_id in list(overdue.values_list("pk", "instance_id")):
        try:
            with transaction.atomic():
                # Judged again under the locks: a heartbeat may have arrived since the list was read.
                check = lock_instance_then(overdue.filter(pk=check_id), instance_id)
                if check is None:
                    continue
                check.status, check.critical_since = Status.CRITICAL, now
                check.consecutive_failures = min(check.consecutive_failures + 1, COUNTER_CAP)
                check.consecutive_successes = 0
                check.output = f"TTL expired: no heartbeat for {check.interval:g} s"
                check.last_checked_at = now
                check.save(update_fields=["status", "critical_since", "consecutive_failures", "consecutive_successes",
                                          "output", "last_checked_at"])
                CheckResult.objects.create(health_check=check, at=now, ok=False, status=check.status,
                                           output=check.output)
                refresh_status(check.instance)
                expired += 1
        except Exception:  # noqa: BLE001 - one row never stops the sweep
            logger.exception("Sweep: TTL expiry of health check %s failed", check_id)
    return expired


def evict_critical(*, now: datetime | None = None, protected: set[str] = frozenset()) -> list[str]:
    """Deregister instances whose check stayed critical past its grace; never in self-preservation."""
    now = now or timezone.now()
    evicted = []
    candidates = (HealthCheck.objects.filter(status=Status.CRITICAL, deregister_critical_after__isnull=False,
                                             critical_since__isnull=False, instance__source=Source.COURTSIDE)
                  .exclude(instance__name__in=protected)
                  .exclude(out_of_range_q())  # marked critical and kept, for an operator to see
                  .values_list("instance__service_id", "instance__name", "name", "critical_since",
                               "deregister_critical_after"))
    for service_id, name, check_name, since, grace in candidates:
        try:
            if service_id in evicted or since + timedelta(seconds=grace) > now:
                continue
            service_deregister(service_id=service_id, kind=RegistryEvent.Kind.EVICTED,
                               reason=f"check {check_name!r} critical since {since:%H:%M:%S}, grace {grace:g} s")
        except DomainError:  # deregistered meanwhile
            continue
        except Exception:  # noqa: BLE001 - one row never stops the sweep
            logger.exception("Sweep: eviction of %s failed", service_id)
            continue
        logger.info("Evicted %s/%s: critical for longer than %s s", name, service_id, grace)
        evicted.append(service_id)
    return evicted


def consul_mirrors_expire(*, now: datetime | None = None) -> tuple[int, list[str]]:
    """Instances mirrored from Consul that no sync has confirmed lately: critical, then gone.

    A mirror is confirmed (last_heartbeat) by every sync that finds it in
    Consul. Unconfirmed for CONSUL_MIRROR_TTL seconds (Consul unreachable, the
    sync stopped), its health is unknown and it is taken out of routing; after
    CONSUL_MIRROR_DEREGISTER_AFTER it is removed. The next sync that finds it
    brings it back. Self-preservation does not apply: Consul, not heartbeats,
    is the judge of these instances, and we are no longer hearing from it.
    Returns (turned critical, removed ids).
    """
    now = now or timezone.now()
    mirrors = ServiceInstance.objects.filter(source=Source.CONSUL).annotate(
        confirmed=Coalesce(F("last_heartbeat"), F("registered_at")))
    stale_since = now - timedelta(seconds=conf.get("CONSUL_MIRROR_TTL"))
    gone_since = now - timedelta(seconds=conf.get("CONSUL_MIRROR_DEREGISTER_AFTER"))
    expired, removed = 0, []
    for pk in list(mirrors.filter(confirmed__lt=stale_since, confirmed__gte=gone_since)
                   .exclude(status=Status.CRITICAL).values_list("pk", flat=True)):
        try:
            with transaction.atomic():
                instance = mirrors.select_for_update(of=("self",)).filter(
                    pk=pk, confirmed__lt=stale_since).exclude(status=Status.CRITICAL).first()
                if instance is None:
                    continue  # a sync confirmed it meanwhile
                previous, age = instance.status, (now - instance.confirmed).total_seconds()
                ServiceInstance.objects.filter(pk=pk).update(status=Status.CRITICAL, updated_at=now)
                instance.status = Status.CRITICAL
                event(RegistryEvent.Kind.STATUS, instance=instance,
                       message=f"{previous} → critical: not confirmed by Consul for {age:.0f} s",
                       detail={"from": previous, "to": Status.CRITICAL, "source": Source.CONSUL})
                bump_index(instance.name)
                expired += 1
        except Exception:  # noqa: BLE001 - one row never stops the sweep
            logger.exception("Sweep: expiring Consul mirror %s failed", pk)
    for service_id, confirmed in list(mirrors.filter(confirmed__lt=gone_since).values_list("service_id", "confirmed")):
        try:
            service_deregister(service_id=service_id, kind=RegistryEvent.Kind.EVICTED,
                               reason=f"not confirmed by Consul since {confirmed:%Y-%m-%d %H:%M:%S}")
            removed.append(service_id)
        except DomainError:
            continue  # removed meanwhile
        except Exception:  # noqa: BLE001 - one row never stops the sweep
            logger.exception("Sweep: removing Consul mirror %s failed", service_id)
    return expired, removed


def checks_probe_due(*, now: datetime | None = None) -> int:
    """Run every due probed check (HTTP, TCP, …) concurrently and record the outcomes; how many were probed.

    A pass takes as long as its slowest probe (up to that check's timeout: a server that accepts connections
    but answers nothing, as gunicorn's master does while its workers start). A caller that must judge TTLs
    more often than that runs this apart from the rest of the sweep (health_sweep(probe=False)).
    """
    due = list(
        HealthCheck.objects.filter(kind__in=kinds.probed(), instance__source=Source.COURTSIDE)
        .filter(next_check_at__lte=now or timezone.now()).exclude(out_of_range_q())
        .values(*kinds.PROBE_FIELDS)
    )
    if not due:
        return 0
    for outcome in probes.run_all(due, concurrency=conf.get("CHECK_CONCURRENCY")):
        try:
            check_record(check_id=outcome.check_id, outcome=outcome.status, output=outcome.output,
                         duration_ms=outcome.duration_ms, now=now)
        except Exception:  # noqa: BLE001 - one row never stops the sweep
            logger.exception("Sweep: recording the probe of health check %s failed", outcome.check_id)
    return len(due)


def health_sweep(*, now: datetime | None = None, probe: bool = True) -> SweepReport:
    """One pass: run due probed checks (HTTP, TCP, …) concurrently, expire TTLs, judge self-preservation, evict,
    age mirrors."""
    report = SweepReport()
    report.out_of_range = checks_mark_out_of_range(now=now)
    if probe:
        report.probed = checks_probe_due(now=now)
    with transaction.atomic():
        report.self_preservation = self_preservation_evaluate(now=now)
    protected = {name for name, active in report.self_preservation.items() if active}
    report.ttl_expired = ttl_expire(now=now, protected=protected)
    report.evicted = evict_critical(now=now, protected=protected)
    report.consul_expired, consul_removed = consul_mirrors_expire(now=now)
    report.evicted += consul_removed
    return report


def events_prune(*, now: datetime | None = None) -> int:
    """Forget registry events older than EVENT_RETENTION_DAYS; flapping checks would grow the table forever."""
    cutoff = (now or timezone.now()) - timedelta(days=conf.get("EVENT_RETENTION_DAYS"))
    deleted, _ = RegistryEvent.objects.filter(at__lt=cutoff).delete()
    return deleted
