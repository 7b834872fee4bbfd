"""Optional two-way sync with a Consul agent over its HTTP API (httpx).

Push: our instances and their checks are registered with the agent
(/v1/agent/service/register), our TTL checks' status is set there
(/v1/agent/check/pass|warn|fail/<id>), and instances we pushed that are gone
here are deregistered (/v1/agent/service/deregister/<id>). An instance the
agent refuses (metadata Consul's rules do not allow, say) is skipped and
reported, and the sync goes on. Pull: Consul's catalog (/v1/catalog/services,
/v1/health/service/<name>) is mirrored into ours with source "consul": each
sync writes Consul's current health (worst of the instance's checks and its
node's), adds, updates and removes instances as Consul lists them, and records
a registry event for each change. A service whose health Consul cannot give
this time keeps its instances as they were; the sweep turns a mirror critical
once no sync has confirmed it for CONSUL_MIRROR_TTL seconds and removes it
after CONSUL_MIRROR_DEREGISTER_AFTER. Each side marks what it copied (Meta
courtside_source / source=consul), so nothing is copied back and forth.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from urllib.parse import quote

import httpx
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from core.masking import mask_text
from registry import events, kinds
from registry.models import (
    SERVICE_ID_PATTERN,
    STATUS_SEVERITY,
    HealthCheck,
    RegistryEvent,
    ServiceInstance,
    Source,
    Status,
)

logger = logging.getLogger(__name__)

SOURCE_META = "courtside_source"


class ConsulError(Exception):
    """A failed call; `status` is Consul's HTTP status, None when the agent could not be reached at all."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class ConsulClient:
    """The few Consul endpoints the sync needs; a token goes in X-Consul-Token and is never logged."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 5.0):
        headers = {"X-Consul-Token": token} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._http.close()

    def _call(self, method: str, path: str, **kwargs):
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ConsulError(mask_text(f"Consul at {self.base_url} unreachable: {error}")) from error
        if response.status_code >= 400:
            raise ConsulError(f"Consul {method} {path}: {response.status_code} {response.text[:200]}",
                              status=response.status_code)
        return response.json() if response.content and "json" in response.headers.get("content-type", "") else None

    def service_register(self, definition: dict) -> None:
        self._call("PUT", "/v1/agent/service/register", json=definition)

    def service_deregister(self, service_id: str) -> None:
        self._call("PUT", f"/v1/agent/service/deregister/{quote(service_id, safe='')}")

    def check_pass(self, check_id: str, note: str = "") -> None:
        self.check_set(check_id, Status.PASSING, note)

    def check_set(self, check_id: str, status: str, note: str = "") -> None:
        """A TTL check's status: passing, warning or critical (agent/check/pass, warn, fail)."""
        verb = {Status.PASSING: "pass", Status.WARNING: "warn", Status.CRITICAL: "fail"}[status]
        self._call("PUT", f"/v1/agent/check/{verb}/{quote(check_id, safe='')}", params={"note": note} if note else None)

    def catalog_services(self) -> dict[str, list[str]]:
        return self._call("GET", "/v1/catalog/services") or {}

    def catalog_service(self, name: str) -> list[dict]:
        return self._call("GET", f"/v1/catalog/service/{quote(name, safe='')}") or []

    def health_service(self, name: str) -> list[dict]:
        return self._call("GET", f"/v1/health/service/{quote(name, safe='')}") or []


@dataclass
class SyncReport:
    pushed: list = field(default_factory=list)
    removed_from_consul: list = field(default_factory=list)
    pulled: list = field(default_factory=list)
    removed_here: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return {key: list(value) for key, value in self.__dict__.items()}


def _duration(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds:g}s"


def consul_check_id(check: HealthCheck) -> str:
    return f"{check.instance.service_id}:{check.name}"


def service_definition(instance: ServiceInstance) -> dict:
    """Our instance as Consul's service definition (agent/service/register body)."""
    checks = []
    for check in instance.checks.all():
        definition = {
            "CheckID": consul_check_id(check),
            "Name": check.name,
            "FailuresBeforeCritical": check.failures_before_critical,
            "SuccessBeforePassing": check.successes_before_passing,
        }
        kind = kinds.get(check.kind)
        if kind is None:  # a kind no longer registered in this process: Consul hears its status by TTL
            kind = kinds.CheckKind()
        definition.update(kind.consul_definition(check))
        if check.deregister_critical_after is not None:
            definition["DeregisterCriticalServiceAfter"] = _duration(check.deregister_critical_after)
        checks.append(definition)
    return {
        "ID": instance.service_id,
        "Name": instance.name,
        "Tags": list(instance.tags),
        "Address": instance.host,
        "Port": instance.port or 0,
        "Meta": consul_meta(instance.metadata or {}),
        "Weights": {"Passing": instance.weight, "Warning": 1},
        "Checks": checks,
    }


# Consul's rules for service Meta (agent/structs: metaKeyFormat, the reserved prefix, the limits).
_CONSUL_META_KEY = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_CONSUL_META_PAIRS = 64
_CONSUL_META_VALUE_LENGTH = 512


def consul_meta(metadata: dict) -> dict:
    """Our metadata as Consul's Meta: string values (JSON for others), only the pairs Consul accepts."""
    meta = {}
    for key, value in metadata.items():
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if (key != SOURCE_META and _CONSUL_META_KEY.match(key) and not key.startswith("consul-")
                and len(text) <= _CONSUL_META_VALUE_LENGTH and len(meta) < _CONSUL_META_PAIRS - 1):
            meta[key] = text
    meta[SOURCE_META] = "courtside"
    return meta


def consul_push(*, client: ConsulClient, report: SyncReport) -> None:
    local = ServiceInstance.objects.filter(source=Source.COURTSIDE).prefetch_related("checks")
    local_ids = set()
    for instance in local:
        local_ids.add(instance.service_id)  # refused below or not, it is ours: never deregistered for that
        try:
            body = service_definition(instance)
            client.service_register(body)
            for check, definition in zip(instance.checks.all(), body["Checks"], strict=True):
                # A TTL check in Consul (heartbeats here, or a kind Consul cannot run): its status is ours.
                if "TTL" in definition and check.status in (Status.PASSING, Status.WARNING, Status.CRITICAL):
                    client.check_set(consul_check_id(check), check.status, note=f"{check.status} in Courtside")
        except ConsulError as error:
            if error.status is None:
                raise  # the agent is unreachable: nothing else will get through either
            logger.warning("Consul refused instance %s: %s", instance.service_id, error)
            report.skipped.append(instance.service_id)
            report.errors.append(f"{instance.service_id}: {error}")
            continue
        report.pushed.append(instance.service_id)
    for name in client.catalog_services():
        for entry in client.catalog_service(name):
            ours = (entry.get("ServiceMeta") or {}).get(SOURCE_META) == "courtside"
            if ours and entry.get("ServiceID") not in local_ids:
                client.service_deregister(entry["ServiceID"])
                report.removed_from_consul.append(entry["ServiceID"])


def _consul_status(checks: list[dict]) -> tuple[str, bool]:
    """(worst status, in maintenance) from Consul's checks of one service instance."""
    maintenance = any(c.get("CheckID", "").startswith(("_service_maintenance", "_node_maintenance"))
                      and c.get("Status") == "critical" for c in checks)
    statuses = [c.get("Status") for c in checks if c.get("Status") in STATUS_SEVERITY]
    worst = max(statuses, key=lambda s: STATUS_SEVERITY[s]) if statuses else Status.PASSING
    return (Status.MAINTENANCE if maintenance else worst), maintenance


def _visible(instance: ServiceInstance) -> tuple:
    """What discovery shows of an instance: a change in any of it bumps the service's index."""
    return (instance.name, instance.host, instance.port, list(instance.tags), instance.metadata, instance.weight,
            instance.status, instance.maintenance)


def _mirror(instance: ServiceInstance, *, entry: dict, fallback_name: str) -> None:
    """Consul's current view of one instance (a /v1/health/service entry), onto our row."""
    service, node = entry.get("Service") or {}, entry.get("Node") or {}
    weights = service.get("Weights") or {}
    passing_weight = weights.get("Passing") if isinstance(weights, dict) else None
    instance.name = service.get("Service") or fallback_name
    instance.host = service.get("Address") or node.get("Address") or ""
    instance.port = service.get("Port") or None
    instance.tags = list(service.get("Tags") or [])
    instance.metadata = {**(service.get("Meta") or {}), "consul_node": node.get("Node", "")}
    instance.weight = min(100, max(1, passing_weight)) if isinstance(passing_weight, int) else 1
    instance.status, instance.maintenance = _consul_status(entry.get("Checks") or [])


def _record_changes(instance: ServiceInstance, before: tuple | None) -> None:
    """A registry event for each change Consul made, and the service's index bumped (old name too)."""
    if before is None:
        events.event(RegistryEvent.Kind.REGISTERED, instance=instance, message="listed by Consul",
                        detail={"host": instance.host, "port": instance.port, "tags": instance.tags,
                                "status": instance.status, "source": Source.CONSUL})
        events.bump_index(instance.name)
        return
    old_name, *_, old_status, old_maintenance = before
    if old_status != instance.status:
        events.event(RegistryEvent.Kind.STATUS, instance=instance, message=f"{old_status} → {instance.status}",
                        detail={"from": old_status, "to": instance.status, "source": Source.CONSUL})
    if old_maintenance != instance.maintenance:
        events.event(RegistryEvent.Kind.MAINTENANCE, instance=instance, message="set in Consul",
                        detail={"maintenance": instance.maintenance, "source": Source.CONSUL})
    if before[:-2] != _visible(instance)[:-2]:
        events.event(RegistryEvent.Kind.UPDATED, instance=instance, message="changed in Consul",
                        detail={"host": instance.host, "port": instance.port, "tags": instance.tags,
                                "source": Source.CONSUL})
    events.bump_index(instance.name)
    if old_name != instance.name:
        events.bump_index(old_name)


@transaction.atomic
def consul_pull(*, client: ConsulClient, report: SyncReport) -> None:
    now = timezone.now()
    seen, unanswered = set(), set()
    for name in client.catalog_services():
        if name == "consul":  # the servers themselves
            continue
        try:
            entries = client.health_service(name)
        except ConsulError as error:
            if error.status is None:
                raise
            # Unknown this time, not gone: its instances stay as they are, unconfirmed (the sweep ages them).
            logger.warning("Consul gave no health for service %s: %s", name, error)
            report.errors.append(f"{name}: {error}")
            unanswered.add(name)
            continue
        for entry in entries:
            service = entry.get("Service") or {}
            if (service.get("Meta") or {}).get(SOURCE_META) == "courtside":
                continue  # ours, pushed earlier
            service_id = service.get("ID")
            if not isinstance(service_id, str) or not SERVICE_ID_PATTERN.match(service_id):
                logger.warning("Consul instance %r not copied: an id we cannot hold", service_id)
                report.skipped.append(str(service_id))
                continue
            existing = ServiceInstance.objects.select_for_update().filter(service_id=service_id).first()
            if existing is not None and existing.source != Source.CONSUL:
                logger.warning("Consul instance %s clashes with a Courtside instance; ours is kept", service_id)
                continue
            instance = existing or ServiceInstance(service_id=service_id, source=Source.CONSUL)
            before = _visible(instance) if existing else None
            _mirror(instance, entry=entry, fallback_name=name)
            try:
                instance.full_clean()
            except ValidationError as error:  # Consul allows names and ids we do not; skip those, keep the rest
                logger.warning("Consul instance %s not copied: %s", service_id, "; ".join(error.messages))
                report.skipped.append(service_id)
                continue
            if before != _visible(instance):  # unchanged rows are not rewritten, nor the index bumped
                instance.last_heartbeat = now
                instance.save()
                _record_changes(instance, before)
            seen.add(service_id)
            report.pulled.append(service_id)
    # Confirmed by Consul just now, changed or not: the sweep ages a mirror from this.
    ServiceInstance.objects.filter(source=Source.CONSUL, service_id__in=seen).update(last_heartbeat=now)
    gone = (ServiceInstance.objects.filter(source=Source.CONSUL).exclude(service_id__in=seen)
            .exclude(name__in=unanswered))
    for service_id, name in gone.values_list("service_id", "name"):
        report.removed_here.append(service_id)
        events.event(RegistryEvent.Kind.DEREGISTERED, service_name=name, service_id=service_id,
                        message="no longer listed by Consul", detail={"source": Source.CONSUL})
        events.bump_index(name)
    gone.delete()


def consul_sync(*, client: ConsulClient, push: bool = True, pull: bool = True) -> SyncReport:
    """Both directions, push first; records one registry event with the counts."""
    report = SyncReport()
    if push:
        consul_push(client=client, report=report)
    if pull:
        consul_pull(client=client, report=report)
    RegistryEvent.objects.create(
        kind=RegistryEvent.Kind.CONSUL_SYNC, message=f"Consul at {mask_text(client.base_url)}",
        detail={key: len(value) for key, value in report.as_dict().items()},
    )
    return report
