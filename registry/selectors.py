"""Reads of the registry: discovery, listings, counts, token lookup."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q
from django.utils import timezone

from core.db import raw_cursor
from core.masking import mask_text
from registry import conf
from registry.models import (
    MAX_TAG_LENGTH,
    MAX_TAGS,
    SERVICE_NAME_PATTERN,
    EtcdMirrorState,
    HealthCheck,
    RegistryCounter,
    SelfPreservation,
    ServiceInstance,
    ServiceToken,
    Status,
    service_name_validator,
)

# What round-robin hands out: a damped warning still takes traffic, critical and maintenance do not.
ROUTABLE = (Status.PASSING, Status.WARNING)


@dataclass(frozen=True)
class Endpoint:
    """A discovered instance: what a client needs to connect, nothing the registry keeps privately."""

    service_id: str
    name: str
    host: str
    port: int | None
    tags: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)
    weight: int = 1
    status: str = Status.PASSING
    source: str = "courtside"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host

    def as_dict(self) -> dict:
        return {
            "service_id": self.service_id, "name": self.name, "host": self.host, "port": self.port,
            "address": self.address, "tags": list(self.tags), "metadata": self.metadata, "weight": self.weight,
            "status": self.status, "source": self.source,
        }


_ENDPOINT_COLUMNS = ("service_id", "name", "host", "port", "tags", "metadata", "weight", "status", "source")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# token hash -> (service name, monotonic expiry): saves a query on every heartbeat.
_token_cache: dict[str, tuple[str, float]] = {}


def token_service_name(token: str) -> str | None:
    """The service a token belongs to, or None. Only hashes are compared, never stored tokens.

    Known tokens are remembered for TOKEN_CACHE_SECONDS in this process, so a
    rotated token keeps working at most that long; unknown ones are never cached.
    """
    if not token:
        return None
    digest = hash_token(token)
    cached = _token_cache.get(digest)
    if cached and cached[1] > time.monotonic():
        return cached[0]
    name = ServiceToken.objects.filter(token_hash=digest).values_list("service_name", flat=True).first()
    if name is not None:
        if len(_token_cache) > 10_000:
            _token_cache.clear()
        _token_cache[digest] = (name, time.monotonic() + conf.get("TOKEN_CACHE_SECONDS"))
    return name


def _status_list(status) -> list[str]:
    if status is None or status == "":
        return []
    values = [status] if isinstance(status, str) else list(status)
    unknown = [value for value in values if value not in Status.values]
    if unknown:
        raise ValidationError({"status": f"Unknown status {unknown[0]!r}; use one of {', '.join(Status.values)}."})
    return values


def discovery_query(name, *, tags=(), status=None) -> tuple[list[str], list[str]]:
    """(tags, statuses) of a discovery query, or a ValidationError for what no instance can match.

    A name no service can have (a NUL byte, capitals) or a tag no instance
    can carry is bad input (400), not an empty answer; so is an unknown status.
    """
    if not isinstance(name, str) or not SERVICE_NAME_PATTERN.match(name):
        raise ValidationError({"name": service_name_validator.message})
    tags = [tag for tag in tags or () if tag]
    if len(tags) > MAX_TAGS or any(not isinstance(tag, str) or len(tag) > MAX_TAG_LENGTH or "\x00" in tag
                                   for tag in tags):
        raise ValidationError({"tag": f"At most {MAX_TAGS} tags of 1 to {MAX_TAG_LENGTH} characters, without NUL."})
    return tags, _status_list(status)


def instances_matching(name: str, *, tags=(), status=None):
    """Queryset of a service's instances carrying every given tag, optionally in the given statuses."""
    tags, statuses = discovery_query(name, tags=tags, status=status)
    queryset = ServiceInstance.objects.filter(name=name)
    if tags:
        queryset = queryset.filter(tags__contains=tags)
    if statuses:
        queryset = queryset.filter(status__in=statuses)
    return queryset


def discover(name: str, *, tags=(), status=None) -> list[Endpoint]:
    """Instances of a service with all `tags`, optionally only in `status` (one or several), by id.

    Discovery is the hot path (bench/discovery.py): one hand-written, fully
    parameterised statement and plain tuples, no queryset compilation and no
    model instances. `instances_matching` is the same filter as a queryset.
    """
    tags, statuses = discovery_query(name, tags=tags, status=status)
    sql = _DISCOVER_SQL
    params: list = [name]
    if tags:
        sql += " AND tags @> %s::varchar(64)[]"
        params.append(tags)
    if statuses:
        sql += " AND status = ANY(%s)"
        params.append(statuses)
    # One round trip instead of two: the statement names its table with the schema.
    with raw_cursor() as cursor:
        cursor.execute(sql + " ORDER BY service_id", params)
        rows = cursor.fetchall()
    return [Endpoint(row[0], row[1], row[2], row[3], row[4], _json(row[5]), row[6], row[7], row[8]) for row in rows]


_DISCOVER_SQL = (
    f"SELECT {', '.join(_ENDPOINT_COLUMNS)} FROM public.{ServiceInstance._meta.db_table} WHERE name = %s"
)


def _json(value):
    # Django has psycopg hand jsonb over as text and decodes it in the field; a raw cursor must do the same.
    return json.loads(value) if isinstance(value, str | bytes) else value


def service_summary():
    """One row per service name: counts by status and the newest heartbeat."""
    return (
        ServiceInstance.objects.values("name")
        .annotate(
            total=Count("id"),
            passing=Count("id", filter=Q(status=Status.PASSING)),
            warning=Count("id", filter=Q(status=Status.WARNING)),
            critical=Count("id", filter=Q(status=Status.CRITICAL)),
            maintenance=Count("id", filter=Q(status=Status.MAINTENANCE)),
            last_heartbeat=Max("last_heartbeat"),
        )
        .order_by("name")
    )


def self_preservation_active():
    return SelfPreservation.objects.filter(active=True).order_by("service_name")


def service_index(name: str) -> int:
    """The change index of a service: bumped on every change discovery would see."""
    return RegistryCounter.objects.filter(key=f"index:{name}").values_list("value", flat=True).first() or 0



def etcd_mirror_stale_after() -> float:
    """Seconds without a heartbeat after which a mirror that did not say it stopped counts as not running."""
    return max(10.0, 5 * conf.get("ETCD_SYNC_EVERY"))


def etcd_mirror_states(*, now=None) -> list[dict]:
    """Every etcd mirror's last recorded state (one a prefix), with `running` and `state` judged now.

    `state`: "in sync", "out of sync" (running, etcd not answering or a reconcile pending), "not responding"
    (no heartbeat for etcd_mirror_stale_after() seconds and no stop recorded: killed, or its host gone),
    "stopped".
    """
    now = now or timezone.now()
    stale_after = etcd_mirror_stale_after()
    rows = []
    for row in EtcdMirrorState.objects.order_by("prefix").values():
        fresh = row["heartbeat_at"] is not None and (now - row["heartbeat_at"]).total_seconds() <= stale_after
        running = row["stopped_at"] is None and fresh
        if row["stopped_at"] is not None:
            state = "stopped"
        elif not fresh:
            state = "not responding"
        else:
            state = "in sync" if row["in_sync"] else "out of sync"
        rows.append({
            **row, **_etcd_mirror_sessions(row["prefix"]),
            "endpoints": mask_text(row["endpoints"]), "last_error": mask_text(row["last_error"]),
            "running": running, "state": state, "in_sync": running and row["in_sync"],
            "process": f"{row['hostname']}:{row['pid']}" if row["pid"] else "",
            "heartbeat_age_seconds": round((now - row["heartbeat_at"]).total_seconds(), 1)
            if row["heartbeat_at"] else None,
        })
    return rows


def _etcd_mirror_sessions(prefix: str) -> dict:
    """`lock_holder` and `standbys` of a prefix's mirror lock, from pg_locks (registry.etcd.mirror_lock_sessions)."""
    from registry.etcd import mirror_lock_sessions

    sessions = mirror_lock_sessions(prefix)
    return {"lock_holder": sessions["holder"], "standbys": sessions["standbys"]}


def etcd_mirror_line(state: dict) -> str:
    """One line of an etcd_mirror_states() row, for the commands (`service_list`, `etcd_mirror --status`)."""
    def when(value):
        return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "never"

    line = (f"etcd mirror {state['prefix']} at {state['endpoints']}: {state['state']}"
            f" (process {state['process'] or '-'}, heartbeat {when(state['heartbeat_at'])}); last sync "
            f"{when(state['last_sync_at'])}; {state['mirrored_out']} mirrored out, {state['pulled_in']} pulled in; "
            f"watch revision {state['watch_revision'] if state['watch_revision'] is not None else '-'}; "
            f"{state['reconnects']} reconnect(s)")
    standbys = state.get("standbys") or []
    line += f"; standby waiting: {', '.join(standbys)}" if standbys else "; no standby"
    if state["last_error"]:
        line += f"; last error {when(state['last_error_at'])}: {state['last_error'][:300]}"
    return line


def failing_checks(*, limit: int = 20) -> list[dict]:
    """Health checks that are not passing, worst first, each with its instance and last output."""
    rows = (HealthCheck.objects.exclude(status=Status.PASSING)  # critical sorts before warning
            .select_related("instance").order_by("status", "instance__name", "name")[:limit])
    return [{"service": c.instance.name, "service_id": c.instance.service_id, "instance_pk": c.instance.pk,
             "check": c.name, "kind": c.kind, "status": c.status, "output": (c.output or "")[:200],
             "since": c.critical_since} for c in rows]
