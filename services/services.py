"""Every write to the registry: tokens, registration, heartbeats, check results, sweeps, round-robin."""

from __future__ import annotations

import bisect
import itertools
import logging
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, DateTimeField, ExpressionWrapper, F, FloatField, Q, Value
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from core.db import soft_write
from core.errors import DomainError
from core.locks import advisory_lock_until_commit
from services import conf, selectors
from services.models import (
    MAX_CHECK_INTERVAL,
    MAX_CHECK_TIMEOUT,
    MAX_CHECKS,
    MAX_DEREGISTER_AFTER,
    SERVICE_ID_PATTERN,
    STATUS_SEVERITY,
    CheckResult,
    HealthCheck,
    RegistryCounter,
    RegistryEvent,
    SelfPreservation,
    ServiceInstance,
    ServiceToken,
    Source,
    Status,
    service_id_validator,
    service_name_validator,
)

logger = logging.getLogger(__name__)

# The read half of the Python API, next to the writes: `services.services.discover(name, tags=[...])`.
discover = selectors.discover

TOKEN_PREFIX = "cs_svc_"


# --- tokens -----------------------------------------------------------------------------------------------------


@transaction.atomic
def token_create(*, service_name: str, rotate: bool = False) -> tuple[ServiceToken, str]:
    """A new token for a service; returns (row, plaintext). The plaintext is never stored or shown again."""
    service_name = _text(service_name, field_name="service_name")
    try:
        service_name_validator(service_name)
    except ValidationError as error:
        raise ValidationError({"service_name": error.messages}) from error
    existing = ServiceToken.objects.select_for_update().filter(service_name=service_name).first()
    if existing and not rotate:
        raise ValidationError({"service_name": f"{service_name!r} already has a token; rotate it instead."})
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = existing or ServiceToken(service_name=service_name)
    token.token_hash = selectors.hash_token(plaintext)
    token.token_prefix = plaintext[: len(TOKEN_PREFIX) + 4]
    token.full_clean()
    token.save()
    selectors._token_cache.clear()  # this process forgets the old token at once; others within the cache time
    return token, plaintext


# --- validation -------------------------------------------------------------------------------------------------
# Types are checked here, for every caller (API, commands, admin, Python): a list is not a host, 80.5 is not a
# port. Ranges are the models' validators, run by full_clean.

DURATION_PATTERN = re.compile(r"^\s*(?P<value>\d{1,15}(?:\.\d{1,9})?)\s*(?P<unit>ms|s|m|h)?\s*\Z")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _text(value, *, field_name: str) -> str:
    """A string, stripped; None is empty. Anything else is refused, not turned into its repr."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({field_name: "A string is expected."})
    return value.strip()


def _whole_number(value, *, field_name: str) -> int | None:
    """An integer (not a bool, not 80.5, not "80"); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({field_name: "A whole number is expected."})
    return value


def parse_duration(value, *, field_name: str) -> float | None:
    """Seconds from a number or a Consul-style duration string ("10s", "500ms", "1m"), always finite.

    Strings are never negative; the range of each duration is its model field's (full_clean).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError({field_name: f"{value!r} is not a duration."})
    if isinstance(value, str):
        match = DURATION_PATTERN.match(value)
        if not match:
            raise ValidationError({field_name: f"{value!r} is not a duration such as 10, '10s', '500ms' or '1m'."})
        value = float(match["value"]) * _UNIT_SECONDS[match["unit"]]
    seconds = float(value) if -1e300 < value < 1e300 else math.inf  # an int of 400 digits is no float
    if not math.isfinite(seconds):
        raise ValidationError({field_name: f"{value!r} is not a finite duration."})
    return seconds


_CHECK_KEYS = {
    "name", "kind", "type", "interval", "ttl", "timeout", "url", "http_url", "expected_status",
    "http_expected_status", "tcp", "tcp_host", "tcp_port", "failures_before_critical",
    "successes_before_passing", "deregister_critical_after",
}


def _check_from_spec(spec, *, index: int, host: str) -> HealthCheck:
    """An unsaved, fully validated HealthCheck from an API-style dict."""
    if not isinstance(spec, dict):
        raise ValidationError({"checks": [f"Check {index + 1} must be an object."]})
    unknown = sorted(str(key) for key in set(spec) - _CHECK_KEYS)
    if unknown:
        raise ValidationError({"checks": [f"Check {index + 1}: unknown field {unknown[0]!r}."]})
    try:
        kind = _text(spec.get("kind") or spec.get("type"), field_name="type").lower()
        if kind not in HealthCheck.Kind.values:
            raise ValidationError({"type": f"unknown check type {kind or '(none)'!r}; use ttl, http or tcp."})
        interval = parse_duration(spec.get("ttl") if kind == "ttl" and spec.get("ttl") is not None
                                  else spec.get("interval"), field_name="interval")
        timeout = parse_duration(spec.get("timeout"), field_name="timeout")
        grace = parse_duration(spec.get("deregister_critical_after"), field_name="deregister_critical_after")
        name = _text(spec.get("name"), field_name="name") or kind
        http_url = _text(spec.get("url") or spec.get("http_url"), field_name="url")
        expected = _whole_number(spec.get("expected_status") or spec.get("http_expected_status"),
                                 field_name="expected_status")
        tcp_host = _text(spec.get("tcp_host"), field_name="tcp_host")
        tcp_port = _whole_number(spec.get("tcp_port"), field_name="tcp_port")
        if spec.get("tcp"):  # Consul's "host:port" form
            tcp_host, _, port_text = _text(spec["tcp"], field_name="tcp").rpartition(":")
            if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
                raise ValidationError({"tcp": f"{spec['tcp']!r} is not host:port."})
            tcp_port = int(port_text)
        failures = _whole_number(spec.get("failures_before_critical", 1), field_name="failures_before_critical")
        successes = _whole_number(spec.get("successes_before_passing", 1), field_name="successes_before_passing")
    except ValidationError as error:
        raise ValidationError({"checks": [f"Check {index + 1}: {field}: {' '.join(messages)}"
                                          for field, messages in error.message_dict.items()]}) from error
    check = HealthCheck(
        name=name,
        kind=kind,
        interval=interval if interval is not None else (conf.get("DEFAULT_TTL") if kind == "ttl" else 10.0),
        timeout=timeout if timeout is not None else 5.0,
        http_url=http_url,
        http_expected_status=expected,
        tcp_host=tcp_host or (host if kind == "tcp" else ""),
        tcp_port=tcp_port,
        failures_before_critical=1 if failures is None else failures,
        successes_before_passing=1 if successes is None else successes,
        deregister_critical_after=grace,
    )
    try:
        check.full_clean(exclude=["instance"])
    except ValidationError as error:
        raise ValidationError(
            {"checks": [f"Check {index + 1} ({check.name}): {field}: {' '.join(messages)}"
                        for field, messages in error.message_dict.items()]}
        ) from error
    return check


def _checks_from_specs(specs, *, host: str) -> list[HealthCheck]:
    if specs is None:
        specs = [{"kind": "ttl", "name": "ttl", "ttl": conf.get("DEFAULT_TTL")}]
    if not isinstance(specs, list | tuple):
        raise ValidationError({"checks": ["A list of checks is expected."]})
    if len(specs) > MAX_CHECKS:
        raise ValidationError({"checks": [f"At most {MAX_CHECKS} checks per instance."]})
    checks = [_check_from_spec(spec, index=i, host=host) for i, spec in enumerate(specs)]
    names = [check.name for check in checks]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValidationError({"checks": [f"Two checks are named {duplicates[0]!r}; names must differ."]})
    return checks


def _normalize_tags(tags) -> list[str]:
    """A list of strings (or, from Python, one comma-separated string); blanks and repeats dropped."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, list | tuple) or not all(isinstance(tag, str) for tag in tags):
        raise ValidationError({"tags": "A list of strings is expected."})
    return list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))


# --- registration -----------------------------------------------------------------------------------------------


def _event(kind, *, instance=None, service_name="", service_id="", message="", detail=None) -> None:
    RegistryEvent.objects.create(
        kind=kind,
        service_name=instance.name if instance else service_name,
        service_id=instance.service_id if instance else service_id,
        message=message,
        detail=detail or {},
    )




def _bump_index(name: str) -> int:
    return counter_next(f"index:{name}")


def _public_table(model) -> str:
    """The model's table named with its schema: the hot paths below do not depend on the search_path."""
    return f'"{get_public_schema_name()}"."{model._meta.db_table}"'


def counter_next(key: str) -> int:
    """Increment a shared counter and return its new value, in one atomic statement."""
    table = _public_table(RegistryCounter)
    return soft_write(
        f"INSERT INTO {table} AS counter (key, value) VALUES (%s, 1) "
        f"ON CONFLICT (key) DO UPDATE SET value = counter.value + 1 RETURNING value",
        [key],
    )[0]


def _authorize(*, token_service: str | None, name: str, existing: ServiceInstance | None) -> None:
    """A token only speaks for its own service; operators (token_service None) speak for all."""
    if token_service is None:
        return
    if existing is not None and existing.name != token_service:
        raise DomainError(
            f"The service id {existing.service_id!r} belongs to another service.",
            code="service_id_taken",
            detail={"service_id": existing.service_id},
        )
    if name != token_service:
        raise DomainError(
            f"This token registers instances of {token_service!r}, not {name!r}.",
            code="wrong_service",
            detail={"name": name},
        )


@transaction.atomic
def service_register(
    *,
    service_id: str,
    name: str,
    host: str,
    port,
    tags=None,
    metadata=None,
    weight=1,
    checks=None,
    token_service: str | None = None,
    source: str = Source.COURTSIDE,
    portless: bool = False,
) -> ServiceInstance:
    """Register an instance, or update it idempotently when the id exists.

    Checks are given as dicts (see `_check_from_spec`); none means one TTL check
    of DEFAULT_TTL. A check that keeps its name and kind keeps its state, so
    re-registering a healthy instance does not make it critical again. Nothing
    is written unless every field and check is valid.
    """
    service_id = _text(service_id, field_name="service_id")
    name = _text(name, field_name="name")
    host = _text(host, field_name="host")
    if not name:
        raise ValidationError({"name": "A service needs a name."})
    if port in (None, "") and not portless:
        raise ValidationError({"port": "A port is required (1 to 65535)."})
    port = _whole_number(None if port == "" else port, field_name="port")
    weight = _whole_number(None if weight == "" else weight, field_name="weight")
    metadata = {} if metadata is None else metadata
    if service_id and not SERVICE_ID_PATTERN.match(service_id):  # checked before it is looked up
        raise ValidationError({"service_id": service_id_validator.message})
    if service_id:
        # A row lock cannot hold an id that does not exist yet: two first registrations of one id (two workers
        # of a cluster as they spawn) would both insert. This lock makes the second one an update.
        advisory_lock_until_commit("service-registration", service_id)
    existing = ServiceInstance.objects.select_for_update().filter(service_id=service_id).first() if service_id else None
    _authorize(token_service=token_service, name=name, existing=existing)

    instance = existing or ServiceInstance(service_id=service_id)
    previous_name = instance.name if existing else None
    instance.name, instance.host, instance.port = name, host, port
    instance.tags, instance.metadata, instance.weight, instance.source = (
        _normalize_tags(tags), metadata, 1 if weight is None else weight, source,
    )
    instance.full_clean(exclude=["status"])
    new_checks = _checks_from_specs(checks, host=instance.host)
    instance.save()

    kept = {(check.name, check.kind): check for check in instance.checks.all()} if existing else {}
    wanted = {(check.name, check.kind) for check in new_checks}
    HealthCheck.objects.filter(instance=instance).exclude(
        pk__in=[check.pk for key, check in kept.items() if key in wanted]
    ).delete()
    now = timezone.now()
    for check in new_checks:
        old = kept.get((check.name, check.kind))
        if old is not None:  # keep its state, take the new definition
            for attribute in ("pk", "status", "consecutive_failures", "consecutive_successes", "critical_since",
                              "last_checked_at", "output", "next_check_at"):
                setattr(check, attribute, getattr(old, attribute))
        else:
            check.status, check.critical_since, check.next_check_at = Status.CRITICAL, now, now
        check.instance = instance
        check.save()

    _refresh_status(instance, quiet=True)
    _event(RegistryEvent.Kind.UPDATED if existing else RegistryEvent.Kind.REGISTERED, instance=instance,
           detail={"host": instance.host, "port": instance.port, "tags": instance.tags, "source": source})
    _bump_index(instance.name)
    if previous_name and previous_name != instance.name:
        _bump_index(previous_name)
    return instance


def _not_registered(service_id) -> DomainError:
    return DomainError(f"No instance {service_id!r} is registered.", code="not_found", status=404,
                       detail={"service_id": service_id})


def _managed_by_consul(service_id) -> DomainError:
    return DomainError(f"The instance {service_id!r} is mirrored from Consul: its health and maintenance are set "
                       f"in Consul, and the next sync brings them here.", code="managed_by_consul", status=409,
                       detail={"service_id": service_id})


def _registrable_id(service_id) -> str:
    """An id that could be registered; any other (a NUL byte, 500 characters) is not registered, by definition."""
    if not isinstance(service_id, str) or not SERVICE_ID_PATTERN.match(service_id):
        raise _not_registered(service_id)
    return service_id


def _load(service_id: str, *, lock: bool = True) -> ServiceInstance:
    queryset = ServiceInstance.objects.select_for_update() if lock else ServiceInstance.objects
    instance = queryset.filter(service_id=_registrable_id(service_id)).first()
    if instance is None:
        raise _not_registered(service_id)
    return instance


@transaction.atomic
def service_deregister(*, service_id: str, token_service: str | None = None, reason: str = "",
                       kind: str = RegistryEvent.Kind.DEREGISTERED) -> None:
    instance = _load(service_id)
    if token_service is not None and instance.name != token_service:
        raise DomainError(f"The service id {service_id!r} belongs to another service.", code="service_id_taken",
                          detail={"service_id": service_id})
    name = instance.name
    instance.delete()
    _event(kind, service_name=name, service_id=service_id, message=reason)
    _bump_index(name)


def service_heartbeat(*, service_id: str, token_service: str | None = None) -> str:
    """Record a heartbeat; passes the instance's TTL checks. Returns the instance's status.

    The common case (a passing instance) is one UPDATE that does not wait for
    the WAL flush; only an instance that is not passing yet takes the locked
    path that applies flap damping.
    """
    table = _public_table(ServiceInstance)
    sql = f"UPDATE {table} SET last_heartbeat = now() WHERE service_id = %s AND source = %s"
    params = [_registrable_id(service_id), Source.COURTSIDE]
    if token_service is not None:
        sql += " AND name = %s"
        params.append(token_service)
    row = soft_write(sql + " RETURNING status", params)
    if row is None:
        other = ServiceInstance.objects.filter(service_id=service_id).values_list("name", "source").first()
        if other is not None and other[1] == Source.CONSUL:
            raise _managed_by_consul(service_id)
        if token_service is not None and other is not None:
            raise DomainError(f"The service id {service_id!r} belongs to another service.", code="service_id_taken",
                              detail={"service_id": service_id})
        raise _not_registered(service_id)
    if row[0] == Status.PASSING:
        return row[0]
    with transaction.atomic():
        instance = _load(service_id)
        now = timezone.now()
        # A check marked out of range stays critical: a heartbeat cannot vouch for a TTL nobody can compute.
        for check in instance.checks.select_for_update().filter(kind=HealthCheck.Kind.TTL).exclude(
                out_of_range_q()):
            _apply_result(check, outcome=Status.PASSING, output="heartbeat", duration_ms=0.0, now=now)
        return _refresh_status(instance)


@transaction.atomic
def maintenance_set(*, service_id: str, on: bool, reason: str = "") -> ServiceInstance:
    instance = _load(service_id)
    if instance.source == Source.CONSUL:
        raise _managed_by_consul(service_id)
    if instance.maintenance != on:
        instance.maintenance = on
        instance.save(update_fields=["maintenance", "updated_at"])
        _event(RegistryEvent.Kind.MAINTENANCE, instance=instance, message=reason, detail={"maintenance": on})
    _refresh_status(instance)
    _bump_index(instance.name)
    return instance


# --- health -----------------------------------------------------------------------------------------------------


def _refresh_status(instance: ServiceInstance, *, quiet: bool = False) -> str:
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
            _event(RegistryEvent.Kind.STATUS, instance=instance, message=f"{previous} → {status}",
                   detail={"from": previous, "to": status})
            _bump_index(instance.name)
    return status


def _apply_result(check: HealthCheck, *, outcome: str, output: str, duration_ms: float, now: datetime) -> None:
    """One probe outcome through Consul's flap damping, kept in the check's short history.

    A failure turns the check critical only after `failures_before_critical` in
    a row, a success turns it passing only after `successes_before_passing` in
    a row; until then it keeps its status. A warning (HTTP 429) is taken as is.
    """
    if outcome == Status.PASSING:
        check.consecutive_successes = min(check.consecutive_successes + 1, _COUNTER_CAP)
        check.consecutive_failures = 0
        if check.status != Status.PASSING and check.consecutive_successes >= check.successes_before_passing:
            check.status, check.critical_since = Status.PASSING, None
    elif outcome == Status.WARNING:
        check.consecutive_successes = check.consecutive_failures = 0
        check.status, check.critical_since = Status.WARNING, None
    else:
        check.consecutive_failures = min(check.consecutive_failures + 1, _COUNTER_CAP)
        check.consecutive_successes = 0
        if check.status != Status.CRITICAL and check.consecutive_failures >= check.failures_before_critical:
            check.status, check.critical_since = Status.CRITICAL, now
    check.output = (output or "")[:2000]
    check.last_checked_at = now
    if check.kind != HealthCheck.Kind.TTL:
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
_COUNTER_CAP = 1_000_000
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


def _out_of_range_reason(check: HealthCheck) -> str:
    problems = []
    if not 0 < check.interval <= MAX_CHECK_INTERVAL:
        problems.append(f"{'TTL' if check.kind == HealthCheck.Kind.TTL else 'interval'} {check.interval:g} s "
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
                check = _lock_instance_then(HealthCheck.objects.filter(pk=check_id), instance_id)
                if check is None:
                    continue
                reason = _out_of_range_reason(check)
                if check.status != Status.CRITICAL:
                    check.status, check.critical_since = Status.CRITICAL, now
                check.output, check.next_check_at, check.last_checked_at = reason, None, now
                check.save(update_fields=["status", "critical_since", "output", "next_check_at", "last_checked_at"])
                _event(RegistryEvent.Kind.INVALID, instance=check.instance, message=f"check {check.name!r}: {reason}",
                       detail={"check": check.name, "interval": repr(check.interval), "timeout": repr(check.timeout),
                               "deregister_critical_after": repr(check.deregister_critical_after)})
                _refresh_status(check.instance)
            logger.warning("Health check %s of %s is %s", check.name, check.instance.service_id, reason)
            marked += 1
        except Exception:  # noqa: BLE001 - one row never stops the sweep
            logger.exception("Sweep: could not mark health check %s", check_id)
    return marked


def _lock_instance_then(check_queryset, instance_id: int):
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
        check = _lock_instance_then(HealthCheck.objects.filter(pk=check_id), instance_id)
        if check is None:
            return None
        _apply_result(check, outcome=outcome, output=output, duration_ms=duration_ms, now=now or timezone.now())
        _refresh_status(check.instance)
        return check


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


def _ttl_checks():
    """Our judgeable TTL checks, annotated with `expiry`: last heartbeat (or registration) plus the TTL, in SQL.

    The TTL is clamped inside the expression as well as filtered: PostgreSQL
    may compute the expression before it applies the filter, and one row's
    `interval out of range` would fail the statement for every row.
    """
    ttl = Least(Greatest(F("interval"), Value(0.0)), Value(MAX_CHECK_INTERVAL), output_field=FloatField())
    return (
        HealthCheck.objects.filter(kind=HealthCheck.Kind.TTL, instance__source=Source.COURTSIDE)
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
    """
    now = now or timezone.now()
    window = timedelta(seconds=conf.get("SELF_PRESERVATION_WINDOW"))
    threshold = conf.get("SELF_PRESERVATION_THRESHOLD")
    minimum = conf.get("SELF_PRESERVATION_MIN_INSTANCES")
    rows = (
        _ttl_checks().filter(instance__maintenance=False, expiry__gt=now - window)
        .values("instance__name").order_by()
        .annotate(total=Count("id"), missed=Count("id", filter=Q(expiry__lte=now)))
        .values_list("instance__name", "total", "missed")
    )
    counts = {name: [total, missed] for name, total, missed in rows}
    states = {state.service_name: state for state in SelfPreservation.objects.select_for_update()}
    result = {}
    for name in set(counts) | {name for name, state in states.items() if state.active}:
        total, missed = counts.get(name, [0, 0])
        active = total >= minimum and missed / total > threshold
        state = states.get(name) or SelfPreservation(service_name=name)
        if active != state.active:
            state.since = now if active else None
            _event(RegistryEvent.Kind.SELF_PRESERVATION_ON if active else RegistryEvent.Kind.SELF_PRESERVATION_OFF,
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
    overdue = (_ttl_checks().filter(expiry__lte=now).exclude(status=Status.CRITICAL)
               .exclude(instance__name__in=protected))
    for check_id, instance_id in list(overdue.values_list("pk", "instance_id")):
        try:
            with transaction.atomic():
                # Judged again under the locks: a heartbeat may have arrived since the list was read.
                check = _lock_instance_then(overdue.filter(pk=check_id), instance_id)
                if check is None:
                    continue
                check.status, check.critical_since = Status.CRITICAL, now
                check.consecutive_failures = min(check.consecutive_failures + 1, _COUNTER_CAP)
                check.consecutive_successes = 0
                check.output = f"TTL expired: no heartbeat for {check.interval:g} s"
                check.last_checked_at = now
                check.save(update_fields=["status", "critical_since", "consecutive_failures", "consecutive_successes",
                                          "output", "last_checked_at"])
                CheckResult.objects.create(health_check=check, at=now, ok=False, status=check.status,
                                           output=check.output)
                _refresh_status(check.instance)
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
                _event(RegistryEvent.Kind.STATUS, instance=instance,
                       message=f"{previous} → critical: not confirmed by Consul for {age:.0f} s",
                       detail={"from": previous, "to": Status.CRITICAL, "source": Source.CONSUL})
                _bump_index(instance.name)
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


def health_sweep(*, now: datetime | None = None, probe: bool = True) -> SweepReport:
    """One pass: run due HTTP/TCP checks concurrently, expire TTLs, judge self-preservation, evict, age mirrors."""
    from services import probes

    report = SweepReport()
    report.out_of_range = checks_mark_out_of_range(now=now)
    if probe:
        due = list(
            HealthCheck.objects.filter(kind__in=[HealthCheck.Kind.HTTP, HealthCheck.Kind.TCP],
                                       instance__source=Source.COURTSIDE)
            .filter(next_check_at__lte=now or timezone.now()).exclude(out_of_range_q())
            .values("pk", "kind", "http_url", "http_expected_status", "tcp_host", "tcp_port", "timeout")
        )
        if due:
            for outcome in probes.run_all(due, concurrency=conf.get("CHECK_CONCURRENCY")):
                try:
                    check_record(check_id=outcome.check_id, outcome=outcome.status, output=outcome.output,
                                 duration_ms=outcome.duration_ms, now=now)
                except Exception:  # noqa: BLE001 - one row never stops the sweep
                    logger.exception("Sweep: recording the probe of health check %s failed", outcome.check_id)
            report.probed = len(due)
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


# --- round-robin ------------------------------------------------------------------------------------------------


def next_instance(name: str, *, tags=()) -> selectors.Endpoint:
    """The next routable instance of a service: weighted round-robin on a counter shared by all processes.

    Position p of the shared counter is mapped onto an interleaved sequence in
    which an instance of weight w appears once in each of the first w rounds,
    so weight 3 next to weight 1 gives A B A A, never a burst of one instance
    longer than its weight. Critical and maintenance instances are skipped.
    """
    tags = sorted({tag for tag in tags or () if tag})
    endpoints = selectors.discover(name, tags=tags, status=selectors.ROUTABLE)
    if not endpoints:
        raise DomainError(f"No healthy instance of {name!r}" + (f" tagged {', '.join(tags)}" if tags else "") + ".",
                          code="no_healthy_instance", status=503, detail={"name": name, "tags": tags})
    weights = [endpoint.weight for endpoint in endpoints]
    position = (counter_next(f"rr:{name}|{','.join(tags)}") - 1) % sum(weights)
    ordered = sorted(weights)
    round_number = 0
    while True:  # round r holds the instances heavier than r; at most max(weight) <= 100 rounds
        size = len(ordered) - bisect.bisect_right(ordered, round_number)
        if position < size:
            break
        position -= size
        round_number += 1
    members = (endpoint for endpoint in endpoints if endpoint.weight > round_number)
    return next(itertools.islice(members, position, None))


# --- schedules --------------------------------------------------------------------------------------------------

HEALTH_SCHEDULE_NAME = "services: health sweep"
CONSUL_SCHEDULE_NAME = "services: Consul sync"


def health_schedule_ensure():
    """The django-q2 schedules of the registry; idempotent, an operator's edits to them are kept.

    The health sweep runs every 30 s (the scheduler's own granularity) and keeps
    sweeping for SWEEP_BUDGET_SECONDS; the Consul sync runs every minute when
    CONSUL_URL is set.
    """
    from django_q.models import Schedule

    schedule, _ = Schedule.objects.get_or_create(
        name=HEALTH_SCHEDULE_NAME,
        defaults={"func": "services.tasks.health_sweep_task", "schedule_type": Schedule.CRON,
                  "cron": "* * * * * */30", "repeats": -1},
    )
    if conf.get("CONSUL_URL"):
        Schedule.objects.get_or_create(
            name=CONSUL_SCHEDULE_NAME,
            defaults={"func": "services.tasks.consul_sync_task", "schedule_type": Schedule.MINUTES,
                      "minutes": 1, "repeats": -1},
        )
    return schedule
