"""Dogfooding: Courtside's own web and cluster processes register themselves and heartbeat.

Lazy and cheap: the web process registers on its first request and then
heartbeats at most every SELF_HEARTBEAT_EVERY seconds from `request_started`;
the cluster heartbeats from its health sweep. Off under the test settings
unless a test turns SELF_REGISTER on. A failure here is logged, never raised:
a registry hiccup must not fail a request.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time

from django_tenants.utils import schema_context

from services import conf

logger = logging.getLogger(__name__)

WEB_SERVICE = "courtside-web"
CLUSTER_SERVICE = "courtside-cluster"

_lock = threading.Lock()
_state: dict = {"web_id": None, "web_last": 0.0, "cluster_id": None, "cluster_last": 0.0}


def _checks() -> list[dict]:
    ttl = conf.get("SELF_TTL")
    # A dead process is deregistered after ten TTLs: long enough to ride out a restart.
    return [{"kind": "ttl", "name": "ttl", "ttl": ttl, "deregister_critical_after": ttl * 10}]


def _register_and_beat(key: str, *, register_kwargs: dict) -> None:
    from services import services

    with schema_context("public"):
        if _state[key] is None:
            services.service_register(**register_kwargs, checks=_checks())
            _state[key] = register_kwargs["service_id"]
            if conf.auto_schedule_enabled():
                services.health_schedule_ensure()
        services.service_heartbeat(service_id=_state[key])


def web_request_started(sender=None, environ=None, **kwargs) -> None:
    """request_started receiver: register this web process once, then heartbeat now and then."""
    if not conf.self_register_enabled():
        return
    now = time.monotonic()
    if now - _state["web_last"] < conf.get("SELF_HEARTBEAT_EVERY") or not _lock.acquire(blocking=False):
        return
    try:
        _state["web_last"] = now
        environ = environ or {}
        hostname = socket.gethostname()
        port = int(environ.get("SERVER_PORT") or 0) or None
        host = environ.get("SERVER_NAME") or hostname
        _register_and_beat("web_id", register_kwargs={
            "service_id": f"web-{hostname}-{port or 0}-{os.getpid()}", "name": WEB_SERVICE, "host": host,
            "port": port, "portless": port is None, "tags": ["courtside", "web"],
            "metadata": {"pid": os.getpid(), "hostname": hostname},
        })
        if _state["web_id"] and not _state.get("atexit"):
            _state["atexit"] = True
            atexit.register(_deregister, "web_id")
    except Exception:  # noqa: BLE001 - never fail a request for the registry's sake
        _state["web_id"] = None  # register again next time
        logger.warning("Self-registration of the web process failed", exc_info=True)
    finally:
        _lock.release()


def cluster_heartbeat() -> None:
    """Called from the health sweep: the task cluster registers itself (its sentinel's pid) and heartbeats."""
    if not conf.self_register_enabled():
        return
    now = time.monotonic()
    if now - _state["cluster_last"] < conf.get("SELF_HEARTBEAT_EVERY"):
        return
    _state["cluster_last"] = now
    hostname = socket.gethostname()
    try:
        _register_and_beat("cluster_id", register_kwargs={
            "service_id": f"cluster-{hostname}-{os.getppid()}", "name": CLUSTER_SERVICE, "host": hostname,
            "port": None, "portless": True, "tags": ["courtside", "cluster"],
            "metadata": {"sentinel_pid": os.getppid(), "hostname": hostname},
        })
    except Exception:  # noqa: BLE001
        _state["cluster_id"] = None
        logger.warning("Self-registration of the task cluster failed", exc_info=True)


def _deregister(key: str) -> None:
    from services import services

    service_id = _state.get(key)
    if not service_id:
        return
    try:
        with schema_context("public"):
            services.service_deregister(service_id=service_id, reason="process exit")
    except Exception:  # noqa: BLE001 - the TTL and the grace period clean up after us anyway
        pass
