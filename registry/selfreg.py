"""Dogfooding: Courtside's own web and cluster processes register themselves and heartbeat.

Each process heartbeats from a thread of its own, every SELF_HEARTBEAT_EVERY
seconds, whether it serves traffic or not: an idle process stays passing, a
killed one stops heartbeating and turns critical within SELF_TTL.

- The web process registers on its first request (which tells it its port)
  and then starts its heartbeat thread. Besides its TTL check it has an HTTP
  check of its own /readyz, probed by the health sweep: an instance whose
  database or task cluster is down is critical though it heartbeats. A new
  check starts critical (Consul's rule); the process registers it with its
  readiness judged in-process as the first result (_record_ready_at_registration).
  Not ready then (no cluster has heartbeated yet, say), each heartbeat judges it
  in-process again until the check is passing (_ready_check_settled): a process
  started before the cluster is routable within one heartbeat of the cluster's
  first beat, not at the next probing sweep. From then on the probes judge it.
- The task cluster registers as its sentinel (`cluster-<host>-<sentinel pid>`):
  every worker starts a heartbeat thread when django-q2 spawns it
  (`post_spawn`), and beats only while its sentinel and the `qcluster` process
  above it live. `kill -9` of qcluster orphans the sentinel and its workers,
  which django-q2 leaves running unsupervised; the registry shows that
  cluster critical instead of passing. The health sweep also beats for it.

Threads do not survive fork(): a forked child (a pre-fork server's worker) is
a process of its own, so it forgets the parent's registration, thread and
locks (os.register_at_fork) and registers as itself on its first request.
A failure here is logged, never raised: a registry hiccup must not fail a
request. Off under the test settings unless SERVICES = {"SELF_REGISTER": True}.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import psutil
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import connection, transaction
from django_tenants.utils import schema_context

from core.errors import DomainError
from registry import conf
from registry.models import MAX_DEREGISTER_AFTER, UNROUTABLE_HOSTS, host_validator

logger = logging.getLogger(__name__)

WEB_SERVICE = "courtside-web"
CLUSTER_SERVICE = "courtside-cluster"
# A thread logs a failing heartbeat once per this many seconds, not at every beat.
_LOG_EVERY = 60.0

_lock = threading.Lock()
_state: dict = {"web_id": None, "web_last": 0.0, "cluster_id": None, "cluster_last": 0.0}


READY_CHECK = "readyz"  # the web process's HTTP check of its own /readyz


def _checks(registration: dict | None = None) -> list[dict]:
    ttl = conf.get("SELF_TTL")
    # A dead process is deregistered after ten TTLs: long enough to ride out a restart.
    checks = [{"kind": "ttl", "name": "ttl", "ttl": ttl, "deregister_critical_after": min(ttl * 10,
                                                                                            MAX_DEREGISTER_AFTER)}]
    ready_url = ((registration or {}).get("metadata") or {}).get("ready_url")
    if ready_url:
        # The sweep GETs /readyz as often as the process heartbeats: critical while its database or task cluster
        # is down (a 503), though the process lives. Two failures in a row, so one slow probe of a loaded
        # machine does not take it out of routing; the TTL check alone stands for "the process is dead".
        checks.append({"kind": "http", "name": READY_CHECK, "url": ready_url, "failures_before_critical": 2,
                       "interval": max(conf.get("SELF_HEARTBEAT_EVERY"), conf.get("MIN_CHECK_INTERVAL"))})
    return checks


def _ready_url(host: str, port: int | None, path: str) -> str | None:
    """http://<host>:<port><path>, with the host's address when its name is not one a URL may carry (a bare
    host name such as "vm"); None when there is no port, or no address either (no HTTP check then)."""
    if not port:
        return None
    for resolve in (False, True):
        try:
            name = socket.gethostbyname(host) if resolve else host
            url = f"http://{f'[{name}]' if ':' in name else name}:{port}{path}"
            URLValidator(schemes=["http"])(url)
            return url
        except (OSError, ValidationError):
            continue
    return None


IN_PROCESS = "readiness in-process"  # the output of a result the process recorded itself, not a probe


def _record_ready_at_registration(service_id: str, ready: bool) -> bool:
    """Consul's trap: a new HTTP check starts critical until its first probe. The process knows its own
    readiness (what /readyz would answer, run in-process before the registration's transaction), so a new
    check gets that as its first result, in the registration's commit. A check probed before keeps its state.
    True when the check is passing afterwards."""
    from registry.health import check_record
    from registry.models import HealthCheck

    check_id, status, checked = (HealthCheck.objects.filter(instance__service_id=service_id, name=READY_CHECK,
                                                            kind="http")
                                 .values_list("pk", "status", "last_checked_at").first() or (None, None, None))
    if check_id is None:
        return True  # no readiness check to settle
    if checked is None:
        check = check_record(check_id=check_id, outcome="passing" if ready else "critical",
                             output=f"{IN_PROCESS} at registration: {'ok' if ready else 'unavailable'}")
        return check is not None and check.status == "passing"
    return status == "passing"


def _ready_check_settled(service_id: str, ready_now: Callable[[], bool]) -> bool:
    """A heartbeat of a process whose readiness check is not passing yet: judge its readiness in-process again,
    and record it when it is ready. The check was recorded critical at registration (its database or the task
    cluster not there yet) and no probe may come soon (the sweep runs every 30 s; a deployment may sweep without
    probing): without this the process stayed out of routing for that long though ready since. Once the check
    is passing (by this or by a probe) the probes alone judge it: this process vouches for itself once, so it
    never flaps against a probe that fails where the process cannot see (its address unreachable from the
    sweep). True when settled: the check is passing, or gone."""
    from registry.health import check_record
    from registry.models import HealthCheck, Status

    row = (HealthCheck.objects.filter(instance__service_id=service_id, name=READY_CHECK, kind="http")
           .values_list("pk", "status").first())
    if row is None or row[1] == Status.PASSING:
        return True
    if not ready_now():
        return False  # still not ready: no result written at every beat, the check stays critical
    check = check_record(check_id=row[0], outcome=Status.PASSING, output=f"{IN_PROCESS} at a heartbeat: ok")
    return check is None or check.status == Status.PASSING


def _ready_in_process() -> bool:
    from ops.health import readiness

    return readiness()[0]


def _register(register_kwargs: dict) -> str:
    from registry import registration

    # The sweep that judges these TTLs is a system job (registry.tasks.health_sweep), scheduled after migrate.
    registration.service_register(**register_kwargs, checks=_checks(register_kwargs))
    return register_kwargs["service_id"]


def _beat(service_id: str) -> str:
    """Heartbeat; the instance's status afterwards."""
    from registry import registration

    return registration.service_heartbeat(service_id=service_id)


class ProcessHeartbeat:
    """A daemon thread that keeps one instance of this process registered and heartbeating.

    `still_ours` says whether the process the instance stands for still lives
    (always, for a web process); once it does not, the thread stops and the
    instance's TTL lapses. The thread registers again when the instance was
    deregistered meanwhile (evicted after a long outage, removed by an operator).
    """

    def __init__(self, *, register_kwargs: dict, still_ours: Callable[[], bool] = lambda: True,
                 ready_now: Callable[[], bool] | None = None):
        self.register_kwargs = register_kwargs
        self.ready_now = ready_now
        self.service_id = register_kwargs["service_id"]
        self.still_ours = still_ours
        self.registered = False
        self.ready_pending = False  # its readiness check recorded not passing, and no probe has judged it since
        self.pid = os.getpid()
        self._stop = threading.Event()
        self._last_logged = 0.0
        self._thread = threading.Thread(target=self._run, name=f"registry-heartbeat-{self.service_id}", daemon=True)

    def start(self) -> ProcessHeartbeat:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self.pid == os.getpid() and self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _register_passing(self) -> None:
        # New checks start critical; this process lives, so it registers and beats in one commit: no sweep or
        # reader ever sees a live process critical between its registration and its first heartbeat. Its
        # readiness (the web process's /readyz check) is judged before the transaction, and recorded in it.
        has_ready_check = bool(self.register_kwargs.get("metadata", {}).get("ready_url"))
        ready = self.ready_now() if self.ready_now is not None and has_ready_check else None
        with transaction.atomic():
            _register(self.register_kwargs)
            settled = True if ready is None else _record_ready_at_registration(self.service_id, ready)
            _beat(self.service_id)
        self.registered = True
        # Not ready at registration: each heartbeat judges its readiness again until the check is passing.
        self.ready_pending = not settled

    def beat_once(self) -> None:
        with schema_context("public"):
            if not self.registered:
                self._register_passing()
                return
            try:
                status = _beat(self.service_id)
            except DomainError as error:
                if error.code != "not_found":
                    raise
                self._register_passing()  # deregistered meanwhile: this process still lives
                return
            if self.ready_pending:
                self.ready_pending = not (status == "passing" or _ready_check_settled(self.service_id,
                                                                                        self.ready_now))

    def _run(self) -> None:
        try:
            while not self._stop.wait(max(0.1, conf.get("SELF_HEARTBEAT_EVERY"))):
                if not conf.self_register_enabled() or not self.still_ours():
                    break
                try:
                    self.beat_once()
                except Exception:  # noqa: BLE001 - the thread outlives a database outage; it beats again
                    self.registered = False
                    connection.close()
                    if time.monotonic() - self._last_logged >= _LOG_EVERY:
                        self._last_logged = time.monotonic()
                        logger.warning("Heartbeat of %s failed", self.service_id, exc_info=True)
                else:
                    connection.close_if_unusable_or_obsolete()
        finally:
            connection.close()


_heartbeats: dict[str, ProcessHeartbeat] = {}


def _start(key: str, heartbeat: ProcessHeartbeat) -> None:
    previous = _heartbeats.get(key)
    if previous is not None and previous.alive():
        return
    _heartbeats[key] = heartbeat.start()


def heartbeats_stop() -> None:
    """Stop this process's heartbeat threads (tests; a process that exits just lets them die)."""
    for heartbeat in list(_heartbeats.values()):
        heartbeat.stop()
    _heartbeats.clear()


def _after_fork_in_child() -> None:
    """A forked child is a process of its own: it has none of its parent's threads, and is not its instance."""
    global _lock
    _lock = threading.Lock()  # the parent may have held it while forking
    _heartbeats.clear()
    _state.update(web_id=None, web_last=0.0, cluster_id=None, cluster_last=0.0)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _web_registration(environ: dict) -> dict:
    hostname = socket.gethostname()
    port = int(environ.get("SERVER_PORT") or 0) or None
    # A server bound to all interfaces may name itself 0.0.0.0 (gunicorn does): no address to connect to.
    host = environ.get("SERVER_NAME") or ""
    if host in UNROUTABLE_HOSTS or not host_validator.regex.match(host):
        host = hostname
    ready_url = _ready_url(host, port, "/readyz")
    return {
        "service_id": f"web-{hostname}-{port or 0}-{os.getpid()}", "name": WEB_SERVICE,
        "host": host, "port": port, "portless": port is None,
        "tags": ["courtside", "web"],
        # Its probes (ops/health.py), for a load balancer; the registry's HTTP check GETs ready_url (_checks).
        "metadata": {"pid": os.getpid(), "hostname": hostname, "health_path": "/healthz", "ready_path": "/readyz",
                     **({"ready_url": ready_url} if ready_url else {})},
    }


def web_request_started(sender=None, environ=None, **kwargs) -> None:
    """request_started receiver: on this process's first request, register it and start its heartbeat thread.

    Every later request costs one dictionary lookup. Registration itself runs
    in the first request (so that request already sees it), and only once per
    process; the thread keeps it alive from then on, with or without traffic.
    """
    heartbeat = _heartbeats.get("web")
    if heartbeat is not None and heartbeat.alive():
        return
    if not conf.self_register_enabled() or not _lock.acquire(blocking=False):
        return
    try:
        heartbeat = ProcessHeartbeat(register_kwargs=_web_registration(environ or {}), ready_now=_ready_in_process)
        try:
            heartbeat.beat_once()
            _state["web_id"] = heartbeat.service_id
        except Exception:  # noqa: BLE001 - never fail a request for the registry's sake; the thread retries
            logger.warning("Self-registration of the web process failed", exc_info=True)
        _start("web", heartbeat)
        if not _state.get("atexit"):
            _state["atexit"] = True
            atexit.register(_deregister, "web_id")
    except Exception:  # noqa: BLE001 - e.g. no thread can be started: the request is answered all the same
        logger.warning("Self-registration of the web process failed", exc_info=True)
    finally:
        _lock.release()


def _cluster_registration() -> dict:
    hostname = socket.gethostname()
    sentinel = os.getppid()
    return {
        "service_id": f"cluster-{hostname}-{sentinel}", "name": CLUSTER_SERVICE, "host": hostname,
        "port": None, "portless": True, "tags": ["courtside", "cluster"],
        "metadata": {"sentinel_pid": sentinel, "hostname": hostname},
    }


def _cluster_lives(sentinel: int, leader: int) -> Callable[[], bool]:
    """True while this worker's sentinel, and the qcluster process that started it, are the ones it had."""

    def check() -> bool:
        if os.getppid() != sentinel:
            return False  # the sentinel died: this worker is an orphan
        try:
            return psutil.Process(sentinel).ppid() == leader
        except psutil.Error:
            return False

    return check


def cluster_worker_spawned(sender=None, **kwargs) -> None:
    """django-q2's post_spawn, in each new worker: heartbeat for the cluster from a thread of this worker."""
    if not conf.self_register_enabled():
        return
    try:
        registration = _cluster_registration()
        sentinel = registration["metadata"]["sentinel_pid"]
        leader = psutil.Process(sentinel).ppid()
        _start("cluster", ProcessHeartbeat(register_kwargs=registration,
                                           still_ours=_cluster_lives(sentinel, leader)))
    except Exception:  # noqa: BLE001 - a worker runs its tasks whether or not it heartbeats
        logger.warning("Self-registration of the task cluster failed", exc_info=True)


def cluster_heartbeat() -> None:
    """Called from the health sweep: the task cluster registers itself (its sentinel's pid) and heartbeats."""
    if not conf.self_register_enabled():
        return
    now = time.monotonic()
    if now - _state["cluster_last"] < conf.get("SELF_HEARTBEAT_EVERY"):
        return
    _state["cluster_last"] = now
    registration = _cluster_registration()
    try:
        with schema_context("public"):
            if _state["cluster_id"] != registration["service_id"]:
                with transaction.atomic():  # registered and passing in one commit, as ProcessHeartbeat does
                    service_id = _register(registration)
                    _beat(service_id)
                _state["cluster_id"] = service_id
            else:
                _beat(_state["cluster_id"])
    except Exception:  # noqa: BLE001
        _state["cluster_id"] = None
        logger.warning("Self-registration of the task cluster failed", exc_info=True)


def _deregister(key: str) -> None:
    from registry import registration

    service_id = _state.get(key)
    if not service_id:
        return
    heartbeat = _heartbeats.pop("web", None)
    if heartbeat is not None:
        heartbeat.stop()
    try:
        with schema_context("public"):
            registration.service_deregister(service_id=service_id, reason="process exit")
    except Exception:  # noqa: BLE001 - the TTL and the grace period clean up after us anyway
        pass
