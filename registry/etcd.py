"""The registry mirrored into etcd, and instances that others write there pulled in, by a watch.

Push: each of our instances that is not critical is a key `<prefix>instances/<service id>` holding its JSON
(name, host, port, tags, metadata, weight, status, origin), on a lease of its own whose TTL is the
instance's TTL (its shortest TTL check; ETCD_LEASE_TTL for an instance without one). The lease is kept
alive only while the instance heartbeats here, so when an instance dies its key expires in etcd by itself,
even if Courtside is down too. A critical or deregistered instance's lease is revoked at once.

Pull: keys under the prefix written by anyone else (another origin) are mirrored as instances with
source "etcd", from one watch on the prefix (no polling): a put adds or updates, a delete (or an expired
lease) removes. Their health is etcd's; heartbeats and maintenance for them are a 409 `managed_by_etcd`.

Faults: any failed call (etcd killed, restarted, unreachable) or the end of the watch stream puts the
mirror out of sync; it retries every ETCD_RETRY_SECONDS and, once etcd answers, reconciles: a new watch
first, then the whole prefix read and mirrored (what vanished meanwhile is removed here), then every one
of our instances pushed again (new leases for those whose lease is gone). Nothing registered while etcd
was away is lost: the registry's database stays the source of truth for our instances.

Client: etcd3gw (etcd's v3 API through its gRPC gateway) for KV and leases. The watch stream is read here
on etcd3gw's session, because etcd3gw's Watcher ends silently when its stream breaks and the mirror must
know at once to reconcile.

State: the running mirror writes where it stands to its EtcdMirrorState row (one a prefix): process, heartbeat,
endpoints (masked), last successful sync, instances mirrored out and pulled in, the watch's revision,
reconnects, the last error and when. The admin, `GET /api/v1/services/etcd-mirror/` and
`manage.py etcd_mirror --status` read it (registry.selectors.etcd_mirror_states).

One mirror a prefix: `manage.py etcd_mirror` mirrors only while it holds the advisory lock "etcd-mirror"
(core.locks; subkey hashtext(prefix)) on a PostgreSQL session of its own (past PgBouncer). A second one on the
prefix waits for that lock as a standby, in PostgreSQL, and takes over as soon as the holder's session ends
(stopped, crashed or SIGKILLed: PostgreSQL ends the session and its lock). The waits show in pg_locks, so the
state reads the holder and its standbys from there (mirror_lock_sessions), each by its session's application_name.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import math
import os
import queue
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import etcd3gw
import requests
from django.core.exceptions import ValidationError
from django.db import DatabaseError, close_old_connections, connections, transaction
from django.db.models import Min, Q
from django.utils import timezone
from etcd3gw.exceptions import Etcd3Exception
from etcd3gw.lease import Lease

from core.locks import advisory_lock, hold_when_free, lock_sessions, session_connection
from core.masking import mask_text
from registry import conf
from registry.events import bump_index, event
from registry.kinds.ttl import NAME as TTL
from registry.models import SERVICE_ID_PATTERN, EtcdMirrorState, RegistryEvent, ServiceInstance, Source, Status

logger = logging.getLogger(__name__)

_LOST = object()  # put on the event queue when the watch stream ends
_FOREIGN_FIELDS = ("name", "host", "port", "tags", "metadata", "weight", "status")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _prefix_end(prefix: str) -> str:
    raw = prefix.encode()
    return base64.b64encode(raw[:-1] + bytes([raw[-1] + 1])).decode()


@dataclass
class _Pushed:
    lease_id: int
    ttl: int
    value: str
    heartbeat: object = None
    refreshed: float = field(default_factory=time.monotonic)


@dataclass
class MirrorStats:
    reconciles: int = 0
    last_reconcile_seconds: float | None = None
    pushed: int = 0
    pulled: int = 0
    removed_here: int = 0
    reconnects: int = 0
    errors: int = 0


class EtcdMirror:
    """One mirror between this registry and an etcd prefix; `run()` it in a thread or a command."""

    def __init__(self, url: str, *, prefix: str | None = None, origin: str | None = None, timeout: float = 2.0):
        parts = urlsplit(url)
        if parts.username or parts.password:
            # etcd answers a URL's user:password (HTTP basic auth) with 401 "invalid auth token": the mirror does not
            # log in to etcd, so it refuses such a URL at once, without echoing it, rather than failing on every call.
            raise ValueError("The etcd URL carries credentials; the mirror does not log in to etcd (no etcd auth): "
                             "give http(s)://host:port.")
        self.url = url
        self.client = etcd3gw.Etcd3Client(host=parts.hostname or "127.0.0.1", port=parts.port or 2379,
                                          protocol=parts.scheme or "http", timeout=timeout, api_path="/v3/")
        self.prefix = (prefix or conf.get("ETCD_PREFIX")).rstrip("/") + "/instances/"
        self.origin = origin or conf.get("ETCD_ORIGIN")
        self.stats = MirrorStats()
        self.in_sync = threading.Event()
        self._events: queue.Queue = queue.Queue()
        self._pushed: dict[str, _Pushed] = {}
        self._watch_response = None
        self._watch_thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=conf.get("ETCD_CONCURRENCY"), thread_name_prefix="etcd-push")
        self._local_clients = threading.local()
        self.revision: int | None = None  # etcd's revision as of the last range read or watched event
        self.last_error, self.last_error_at = "", None
        self.last_sync_at = None
        self._lost_once = False
        self._state_written = 0.0
        self.lost_lock = False

    # --- the loop ---------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event, *, held=None) -> None:
        """Until `stop` is set: reconcile when out of sync, else apply watched events and push every period.

        `held()` (mirror_lock's): asked every period whether this mirror still holds its prefix's lock; when
        it no longer does (its PostgreSQL session ended: a standby may be mirroring now), the mirror stops at
        once, without writing the state row again (`lost_lock` is then set).
        """
        period, retry = conf.get("ETCD_SYNC_EVERY"), conf.get("ETCD_RETRY_SECONDS")
        self.record_state(started=True)
        try:
            while not stop.is_set():
                if held is not None and not held():
                    logger.error("etcd mirror of %s lost its lock session: stopping", self.prefix)
                    self.lost_lock = True
                    return
                try:
                    if not self.in_sync.is_set():
                        self.reconcile()
                        self.record_state()
                    self._drain(timeout=period)
                    if self.in_sync.is_set():
                        self.push()
                        self.last_sync_at = timezone.now()
                    self.record_state(every=period)
                except (Etcd3Exception, requests.RequestException, OSError) as error:
                    self._lose(f"etcd at {self.url}: {error}")
                    self.record_state()
                    stop.wait(retry)
        finally:
            self.close()
            if not self.lost_lock:
                self.record_state(stopped=True)
            connections.close_all()  # this thread's own connections (a thread's are its own): none left open

    def close(self) -> None:
        """Stop the watch and the push threads (run() does it when it stops)."""
        self._stop_watch()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _lose(self, why: str) -> None:
        if self.in_sync.is_set():
            logger.warning("etcd mirror out of sync: %s", mask_text(why)[:300])
        self.in_sync.clear()
        self._lost_once = True
        self.stats.errors += 1
        self.last_error, self.last_error_at = mask_text(why)[:2000], timezone.now()
        self._stop_watch()

    def record_state(self, *, started: bool = False, stopped: bool = False, every: float = 0.0) -> None:
        """Where this mirror stands, into its EtcdMirrorState row (skipped when written less than `every` ago).

        A database that fails here is logged, never the mirror's end: the mirror's work is etcd's and the
        registry's rows, this row only reports on it.
        """
        if every and time.monotonic() - self._state_written < every:
            return
        now = timezone.now()
        values = {
            "endpoints": mask_text(self.url)[:500], "origin": self.origin[:200], "hostname": socket.gethostname()[:255],
            "pid": os.getpid(), "heartbeat_at": now, "in_sync": self.in_sync.is_set() and not stopped,
            "last_sync_at": self.last_sync_at, "last_reconcile_seconds": self.stats.last_reconcile_seconds,
            "mirrored_out": len(self._pushed), "puts": self.stats.pushed, "pulls": self.stats.pulled,
            "removed_here": self.stats.removed_here, "reconciles": self.stats.reconciles,
            "reconnects": self.stats.reconnects, "errors": self.stats.errors, "watch_revision": self.revision,
            "last_error": self.last_error, "last_error_at": self.last_error_at,
            "stopped_at": now if stopped else None,
        }
        if started:
            values["started_at"] = now
        try:
            values["pulled_in"] = ServiceInstance.objects.filter(source=Source.ETCD).count()
            EtcdMirrorState.objects.update_or_create(prefix=self.prefix[:300], defaults=values)
        except DatabaseError as error:
            logger.warning("etcd mirror state not recorded: %s", mask_text(str(error))[:300])
            close_old_connections()
            return
        self._state_written = time.monotonic()

    def reconcile(self, *, watch: bool = True) -> None:
        """A new watch, the prefix mirrored here, our instances pushed there: in sync again.

        `watch=False` (a one-off sync, `etcd_mirror --once`): no watch is opened. Closing a watch stream
        while etcd is up was seen here to take the leases granted meanwhile with it (their keys vanished);
        until that is understood, only a running mirror watches, and it closes its watch only on stop.
        """
        started = time.monotonic()
        self._stop_watch()
        self._events = queue.Queue()
        if watch:
            self._start_watch()
        answer = self.client.post(self.client.get_url("/kv/range"),
                                  json={"key": _b64(self.prefix), "range_end": _prefix_end(self.prefix)})
        kvs = answer.get("kvs", [])
        self._note_revision(answer.get("header"))
        ours, foreign = {}, {}
        for kv in kvs:
            key = base64.b64decode(kv["key"]).decode(errors="replace")
            value = self._parse(base64.b64decode(kv.get("value", "")))
            if value is None:
                continue
            target = ours if value.get("origin") == self.origin else foreign
            target[key[len(self.prefix):]] = (value, kv)
        self._mirror_all(foreign)
        self._pushed = {}
        for service_id, (value, kv) in ours.items():
            lease_id = int(kv.get("lease", 0) or 0)
            if lease_id:
                self._pushed[service_id] = _Pushed(lease_id, ttl=-1, value=json.dumps(value, sort_keys=True))
        self.push()
        self.stats.reconciles += 1
        if self._lost_once:
            self.stats.reconnects += 1
        self.stats.last_reconcile_seconds = time.monotonic() - started
        self.last_sync_at = timezone.now()
        self.in_sync.set()
        logger.info("etcd mirror in sync with %s (%d of ours, %d pulled) in %.3f s", self.url, len(self._pushed),
                    len(foreign), self.stats.last_reconcile_seconds)

    # --- push -------------------------------------------------------------------------------------------------

    def _local(self):
        return (ServiceInstance.objects.filter(source=Source.COURTSIDE)
                .annotate(ttl=Min("checks__interval", filter=Q(checks__kind=TTL)))
                .values("service_id", "name", "host", "port", "tags", "metadata", "weight", "status",
                        "last_heartbeat", "ttl"))

    def push(self) -> None:
        """Our instances into etcd: puts of what changed, keep-alives of what heartbeated, revokes of the dead.

        The calls for different instances go out concurrently (ETCD_CONCURRENCY): etcd commits concurrent
        proposals together, so a reconcile of hundreds of instances takes about as many fsyncs as a few.
        """
        seen, work = set(), []
        default_ttl = conf.get("ETCD_LEASE_TTL")
        for row in self._local():
            service_id = row["service_id"]
            if row["status"] == Status.CRITICAL:
                continue  # its key goes below, with its lease
            seen.add(service_id)
            value = json.dumps({"service_id": service_id, "name": row["name"], "host": row["host"],
                                "port": row["port"], "tags": row["tags"], "metadata": row["metadata"],
                                "weight": row["weight"], "status": row["status"], "origin": self.origin},
                               sort_keys=True)
            ttl = max(2, math.ceil(row["ttl"] or default_ttl))
            state = self._pushed.get(service_id)
            if state is not None and state.ttl == -1:
                # Found in etcd by a reconcile's read, so its lease was alive then (etcd deletes the keys of an
                # expired lease, and renews every lease when it restarts): adopted as it is, no call needed.
                state.ttl, state.heartbeat, state.refreshed = ttl, row["last_heartbeat"], time.monotonic()
            heartbeat_checked = row["ttl"] is not None
            if (state is None or state.ttl != ttl or state.value != value
                    or (heartbeat_checked and row["last_heartbeat"] != state.heartbeat)
                    or (not heartbeat_checked and time.monotonic() - state.refreshed > ttl / 3)):
                work.append((service_id, value, ttl, row["last_heartbeat"], state))
        gone = [(service_id, self._pushed[service_id]) for service_id in set(self._pushed) - seen]
        futures = [self._pool.submit(self._sync_one, *item) for item in work]
        futures += [self._pool.submit(self._drop_one, *item) for item in gone]
        for service_id, _ in gone:
            self._pushed.pop(service_id, None)
        for future in futures:
            result = future.result()  # the first failure (etcd away) propagates: out of sync
            if result is not None:
                service_id, state, put = result
                if state is None:
                    self._pushed.pop(service_id, None)
                else:
                    self._pushed[service_id] = state
                self.stats.pushed += put

    def _sync_one(self, service_id: str, value: str, ttl: int, heartbeat, state: _Pushed | None):
        """One instance's key and lease in step with its row; (id, new state or None, puts made)."""
        client = self._thread_client()
        if state is not None and state.ttl == ttl:
            if state.heartbeat != heartbeat or state.value == value:  # a heartbeat, or time to keep it alive
                if Lease(state.lease_id, client).refresh() <= 0:
                    state = None  # expired (we were away longer than the TTL): a new lease
                else:
                    state.heartbeat, state.refreshed = heartbeat, time.monotonic()
        elif state is not None:  # its TTL check changed
            Lease(state.lease_id, client).revoke()
            state = None
        if state is None:
            lease = client.lease(ttl)
            client.put(self.prefix + service_id, value, lease=lease)
            return service_id, _Pushed(lease.id, ttl, value, heartbeat), 1
        if state.value != value:
            client.put(self.prefix + service_id, value, lease=Lease(state.lease_id, client))
            state.value = value
            return service_id, state, 1
        return service_id, state, 0

    def _drop_one(self, service_id: str, state: _Pushed) -> None:
        client = self._thread_client()
        Lease(state.lease_id, client).revoke()  # deletes the key with it
        client.delete(self.prefix + service_id)

    def _thread_client(self) -> etcd3gw.Etcd3Client:
        client = getattr(self._local_clients, "client", None)
        if client is None:
            client = self._local_clients.client = etcd3gw.Etcd3Client(
                host=self.client.host, port=self.client.port, protocol=self.client.protocol,
                timeout=self.client.timeout, api_path="/v3/")
        return client

    # --- pull -------------------------------------------------------------------------------------------------

    def _start_watch(self) -> None:
        body = {"create_request": {"key": _b64(self.prefix), "range_end": _prefix_end(self.prefix)}}
        response = self.client.session.post(self.client.get_url("/watch"), json=body, stream=True,
                                            timeout=(self.client.timeout, None))
        response.raise_for_status()
        self._watch_response = response
        events = self._events
        self._watch_thread = threading.Thread(target=self._read_watch, args=(response, events), daemon=True,
                                              name="etcd-mirror-watch")
        self._watch_thread.start()

    def _read_watch(self, response, events: queue.Queue) -> None:
        try:
            for line in response.iter_lines():
                if not line.strip():
                    continue
                result = json.loads(line).get("result", {})
                self._note_revision(result.get("header"))
                for item in result.get("events", []):
                    events.put(item)
        except Exception as error:  # noqa: BLE001 - any end of the stream means: reconcile
            logger.debug("etcd watch ended: %s", error)
        events.put(_LOST)

    def _stop_watch(self) -> None:
        """End the watch stream and its reader thread, at once.

        The socket is shut down first: the reader thread sits in a blocking read of the stream holding its
        buffer's lock, so a bare close() waited for etcd's next bytes (over 10 s on an idle prefix). A
        shutdown makes that read return at once (the stream ends), and the close then goes through.
        """
        response, self._watch_response = self._watch_response, None
        thread, self._watch_thread = self._watch_thread, None
        if response is None:
            return
        connection = getattr(response.raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):  # already ended (etcd gone): nothing to wake
                sock.shutdown(socket.SHUT_RDWR)
        try:
            response.close()
        except Exception:  # noqa: BLE001 - closing a broken stream
            pass
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)

    def _drain(self, *, timeout: float) -> None:
        """Apply watched events as they come, for up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                item = self._events.get(timeout=max(0.0, remaining)) if remaining > 0 else self._events.get_nowait()
            except queue.Empty:
                return
            if item is _LOST:
                if self.in_sync.is_set():
                    self._lose("the watch stream ended")
                return
            self._apply(item)

    def _apply(self, item: dict) -> None:
        kv = item.get("kv", {})
        service_id = base64.b64decode(kv.get("key", "")).decode(errors="replace")[len(self.prefix):]
        if item.get("type") == "DELETE":
            self._remove(service_id, reason="deleted from etcd (or its lease expired)")
            return
        value = self._parse(base64.b64decode(kv.get("value", "")))
        if value is not None and value.get("origin") != self.origin:
            self._mirror_one(service_id, value)

    def _note_revision(self, header) -> None:
        try:
            revision = int((header or {}).get("revision"))
        except (TypeError, ValueError):
            return
        if self.revision is None or revision > self.revision:
            self.revision = revision

    @staticmethod
    def _parse(raw: bytes) -> dict | None:
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def _mirror_all(self, foreign: dict) -> None:
        for service_id, (value, _) in foreign.items():
            self._mirror_one(service_id, value)
        gone = ServiceInstance.objects.filter(source=Source.ETCD).exclude(service_id__in=list(foreign))
        for service_id in list(gone.values_list("service_id", flat=True)):
            self._remove(service_id, reason="no longer in etcd")

    @transaction.atomic
    def _mirror_one(self, service_id: str, value: dict) -> None:
        if not SERVICE_ID_PATTERN.match(service_id):
            logger.warning("etcd instance %r not copied: an id we cannot hold", service_id[:200])
            return
        existing = ServiceInstance.objects.select_for_update().filter(service_id=service_id).first()
        if existing is not None and existing.source != Source.ETCD:
            logger.warning("etcd instance %s clashes with an instance of ours; ours is kept", service_id)
            return
        instance = existing or ServiceInstance(service_id=service_id, source=Source.ETCD)
        before = {name: getattr(instance, name) for name in _FOREIGN_FIELDS} if existing else None
        instance.name = value.get("name") if isinstance(value.get("name"), str) else ""
        instance.host = value.get("host") if isinstance(value.get("host"), str) else ""
        instance.port = value.get("port") if isinstance(value.get("port"), int) else None
        instance.tags = [tag for tag in value.get("tags") or [] if isinstance(tag, str)][:32]
        instance.metadata = value.get("metadata") if isinstance(value.get("metadata"), dict) else {}
        weight = value.get("weight")
        instance.weight = min(100, max(1, weight)) if isinstance(weight, int) and not isinstance(weight, bool) else 1
        status = value.get("status", Status.PASSING)
        instance.status = status if status in (Status.PASSING, Status.WARNING, Status.CRITICAL) else Status.PASSING
        try:
            instance.full_clean()
        except ValidationError as error:
            logger.warning("etcd instance %s not copied: %s", service_id, "; ".join(error.messages)[:300])
            return
        after = {name: getattr(instance, name) for name in _FOREIGN_FIELDS}
        if before == after:
            return
        instance.last_heartbeat = timezone.now()
        instance.save()
        event(RegistryEvent.Kind.UPDATED if existing else RegistryEvent.Kind.REGISTERED, instance=instance,
              message="changed in etcd" if existing else "listed in etcd",
              detail={"host": instance.host, "port": instance.port, "tags": instance.tags, "source": Source.ETCD})
        bump_index(instance.name)
        if before and before["name"] != instance.name:
            bump_index(before["name"])
        self.stats.pulled += 1

    @transaction.atomic
    def _remove(self, service_id: str, *, reason: str) -> None:
        instance = ServiceInstance.objects.select_for_update().filter(service_id=service_id,
                                                                      source=Source.ETCD).first()
        if instance is None:
            return
        name = instance.name
        instance.delete()
        event(RegistryEvent.Kind.DEREGISTERED, service_name=name, service_id=service_id, message=reason,
              detail={"source": Source.ETCD})
        bump_index(name)
        self.stats.removed_here += 1


LOCK = "etcd-mirror"
_SESSION_NAME = "courtside-etcd-mirror "


def _lock_subkey(prefix: str) -> str:
    return prefix[:300]  # as the state row's key


def mirror_process() -> str:
    """This process as the state and the lock sessions name it: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def mirror_lock(prefix: str, *, stop: threading.Event | None = None, on_standby=None):
    """Hold the "etcd-mirror" lock of `prefix` (a mirror's full prefix) on a PostgreSQL session of its own.

    Yields `held`, a callable telling whether the lock is still held (its session alive), for EtcdMirror.run;
    or None when it was not taken: with `stop` None, at once if another session holds it; else it waits as a
    standby (on_standby() called once when it starts waiting) until the lock is free, or None when `stop` is set.
    The lock ends with the block, or with this process, however it ends.
    """
    with session_connection(application_name=_SESSION_NAME + mirror_process()) as session:
        if stop is None:
            with advisory_lock(LOCK, _lock_subkey(prefix), wait=False, using=session) as acquired:
                yield (lambda: _alive(session)) if acquired else None
            return
        acquired = hold_when_free(LOCK, _lock_subkey(prefix), session=session, stop=stop, on_wait=on_standby)
        yield (lambda: _alive(session)) if acquired else None


def _alive(session) -> bool:
    try:
        session.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure of the session: its lock is gone with it
        return False
    return True


def mirror_lock_sessions(prefix: str) -> dict:
    """Who holds the lock of `prefix` and who stands by: {"holder": "host:pid" or "", "standbys": ["host:pid"]}."""
    holder, standbys = "", []
    for row in lock_sessions(LOCK, _lock_subkey(prefix)):
        name = row["application_name"]
        process = name[len(_SESSION_NAME):] if name.startswith(_SESSION_NAME) else f"backend {row['backend_pid']}"
        if row["granted"]:
            holder = process
        else:
            standbys.append(process)
    return {"holder": holder, "standbys": standbys}


def start_mirror(url: str, **kwargs) -> tuple[EtcdMirror, threading.Event, threading.Thread]:
    """A mirror running in a daemon thread; set the event to stop it."""
    mirror, stop = EtcdMirror(url, **kwargs), threading.Event()
    thread = threading.Thread(target=mirror.run, args=(stop,), daemon=True, name="etcd-mirror")
    thread.start()
    return mirror, stop, thread
