"""Registration: register (with check specs parsed through each kind), heartbeat, maintenance, deregister."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.db import soft_write
from core.errors import DomainError
from core.locks import advisory_lock_until_commit
from registry import conf, kinds
from registry.events import bump_index, event, public_table
from registry.health import apply_result, out_of_range_q, refresh_status
from registry.inputs import normalize_tags, parse_duration, text, whole_number
from registry.kinds.ttl import NAME as TTL
from registry.models import (
    MAX_CHECKS,
    SERVICE_ID_PATTERN,
    HealthCheck,
    RegistryEvent,
    ServiceInstance,
    Source,
    Status,
    service_id_validator,
)

# --- check specs ------------------------------------------------------------------------------------------------

def _check_from_spec(spec, *, index: int, host: str) -> HealthCheck:
    """An unsaved, fully validated HealthCheck from an API-style dict; the kind parses its own keys."""
    if not isinstance(spec, dict):
        raise ValidationError({"checks": [f"Check {index + 1} must be an object."]})
    unknown = sorted(str(key) for key in set(spec) - kinds.spec_keys())
    if unknown:
        raise ValidationError({"checks": [f"Check {index + 1}: unknown field {unknown[0]!r}."]})
    try:
        kind_name = text(spec.get("kind") or spec.get("type"), field_name="type").lower()
        kind = kinds.get(kind_name)
        if kind is None:
            raise ValidationError({"type": kinds.unknown_kind_message(kind_name)})
        raw_interval = next((spec[key] for key in kind.interval_keys if spec.get(key) is not None), None)
        interval = parse_duration(raw_interval, field_name="interval")
        timeout = parse_duration(spec.get("timeout"), field_name="timeout")
        grace = parse_duration(spec.get("deregister_critical_after"), field_name="deregister_critical_after")
        name = text(spec.get("name"), field_name="name") or kind_name
        own_fields = kind.fields_from_spec(spec, host=host)
        failures = whole_number(spec.get("failures_before_critical", 1), field_name="failures_before_critical")
        successes = whole_number(spec.get("successes_before_passing", 1), field_name="successes_before_passing")
    except ValidationError as error:
        raise ValidationError({"checks": [f"Check {index + 1}: {field}: {' '.join(messages)}"
                                          for field, messages in error.message_dict.items()]}) from error
    check = HealthCheck(
        name=name,
        kind=kind_name,
        interval=interval if interval is not None else kind.default_interval(conf),
        timeout=timeout if timeout is not None else 5.0,
        failures_before_critical=1 if failures is None else failures,
        successes_before_passing=1 if successes is None else successes,
        deregister_critical_after=grace,
        **own_fields,
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
        specs = [{"kind": TTL, "name": TTL, "ttl": conf.get("DEFAULT_TTL")}]
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
    service_id = text(service_id, field_name="service_id")
    name = text(name, field_name="name")
    host = text(host, field_name="host")
    if not name:
        raise ValidationError({"name": "A service needs a name."})
    if port in (None, "") and not portless:
        raise ValidationError({"port": "A port is required (1 to 65535)."})
    port = whole_number(None if port == "" else port, field_name="port")
    weight = whole_number(None if weight == "" else weight, field_name="weight")
    metadata = {} if metadata is None else metadata
    if service_id and not SERVICE_ID_PATTERN.match(service_id):  # checked before it is looked up
        raise ValidationError({"service_id": service_id_validator.message})
    if service_id:
        # A row lock cannot hold an id that does not exist yet: two first registrations of one id (two workers
        # of a cluster as they spawn) would both insert. This lock makes the second one an update.
        advisory_lock_until_commit("service-registration", service_id)  # core.locks: (class, hashtext(id))
    existing = ServiceInstance.objects.select_for_update().filter(service_id=service_id).first() if service_id else None
    _authorize(token_service=token_service, name=name, existing=existing)

    instance = existing or ServiceInstance(service_id=service_id)
    previous_name = instance.name if existing else None
    instance.name, instance.host, instance.port = name, host, port
    instance.tags, instance.metadata, instance.weight, instance.source = (
        normalize_tags(tags), metadata, 1 if weight is None else weight, source,
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

    refresh_status(instance, quiet=True)
    event(RegistryEvent.Kind.UPDATED if existing else RegistryEvent.Kind.REGISTERED, instance=instance,
           detail={"host": instance.host, "port": instance.port, "tags": instance.tags, "source": source})
    bump_index(instance.name)
    if previous_name and previous_name != instance.name:
        bump_index(previous_name)
    return instance


def _not_registered(service_id) -> DomainError:
    return DomainError(f"No instance {service_id!r} is registered.", code="not_found", status=404,
                       detail={"service_id": service_id})


def _managed_by_etcd(service_id) -> DomainError:
    return DomainError(f"The instance {service_id!r} is mirrored from etcd: its health is its key's there (its "
                       f"lease), and the watch brings changes here.", code="managed_by_etcd", status=409,
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
    event(kind, service_name=name, service_id=service_id, message=reason)
    bump_index(name)


def service_heartbeat(*, service_id: str, token_service: str | None = None) -> str:
    """Record a heartbeat; passes the instance's TTL checks. Returns the instance's status.

    The common case (a passing instance) is one UPDATE that does not wait for
    the WAL flush; only an instance that is not passing yet takes the locked
    path that applies flap damping.
    """
    table = public_table(ServiceInstance)
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
        if other is not None and other[1] == Source.ETCD:
            raise _managed_by_etcd(service_id)
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
        for check in instance.checks.select_for_update().filter(kind=TTL).exclude(
                out_of_range_q()):
            apply_result(check, outcome=Status.PASSING, output="heartbeat", duration_ms=0.0, now=now)
        return refresh_status(instance)


@transaction.atomic
def maintenance_set(*, service_id: str, on: bool, reason: str = "") -> ServiceInstance:
    instance = _load(service_id)
    if instance.source == Source.CONSUL:
        raise _managed_by_consul(service_id)
    if instance.source == Source.ETCD:
        raise _managed_by_etcd(service_id)
    if instance.maintenance != on:
        instance.maintenance = on
        instance.save(update_fields=["maintenance", "updated_at"])
        event(RegistryEvent.Kind.MAINTENANCE, instance=instance, message=reason, detail={"maintenance": on})
    refresh_status(instance)
    bump_index(instance.name)
    return instance


# --- health -----------------------------------------------------------------------------------------------------
