"""Each mcp_serve process is an `nba-mcp-server` instance of the service registry.

It registers when it starts listening (tags: transport and version; metadata: port, tools count,
pid), heartbeats from a thread of its own every SELF_HEARTBEAT_EVERY seconds whether it serves
calls or not (a TTL check of SELF_TTL), carries an HTTP check on its own `/health` that the
cluster's health sweep runs, and deregisters on a clean stop. A killed process stops
heartbeating and turns critical within its TTL. Registry settings: registry/conf.py.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from django.db import connection
from django_tenants.utils import schema_context

from core.errors import DomainError
from registry import conf
from registry import registration as registry
from registry.models import MAX_DEREGISTER_AFTER

logger = logging.getLogger("courtside.mcp")


class McpRegistration:
    def __init__(self, *, service_id: str, name: str, host: str, port: int, version: str, tools: int,
                 pid: int):
        self.service_id = service_id
        ttl = conf.get("SELF_TTL")
        grace = min(ttl * 10, MAX_DEREGISTER_AFTER)
        self.kwargs = {
            "service_id": service_id, "name": name, "host": host, "port": port,
            "tags": ["mcp", "streamable-http", f"v{version}"],
            "metadata": {"port": port, "tools": tools, "pid": pid, "transport": "streamable-http",
                         "version": version, "path": "/mcp", "hostname": socket.gethostname()},
            "checks": [
                {"kind": "ttl", "name": "ttl", "ttl": ttl, "deregister_critical_after": grace},
                {"kind": "http", "name": "health", "url": f"http://{host}:{port}/health", "interval": 10.0,
                 "timeout": 2.0, "deregister_critical_after": grace},
            ],
        }
        self.registered = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"registry-heartbeat-{service_id}", daemon=True)

    def beat_once(self) -> None:
        with schema_context("public"):
            if not self.registered:
                registry.service_register(**self.kwargs)
                self.registered = True
            try:
                registry.service_heartbeat(service_id=self.service_id)
            except DomainError as error:
                if error.code != "not_found":
                    raise
                registry.service_register(**self.kwargs)  # removed meanwhile while this process lives
                registry.service_heartbeat(service_id=self.service_id)

    def start(self) -> McpRegistration:
        try:
            self.beat_once()
        except Exception:  # noqa: BLE001 - the server serves without the registry; the thread retries
            self.registered = False
            logger.warning("Registration of %s failed", self.service_id, exc_info=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        last_logged = 0.0
        try:
            while not self._stop.wait(max(0.1, conf.get("SELF_HEARTBEAT_EVERY"))):
                try:
                    self.beat_once()
                except Exception:  # noqa: BLE001 - beat again after a database outage
                    self.registered = False
                    connection.close()
                    if time.monotonic() - last_logged >= 60:
                        last_logged = time.monotonic()
                        logger.warning("Heartbeat of %s failed", self.service_id, exc_info=True)
                else:
                    connection.close_if_unusable_or_obsolete()
        finally:
            connection.close()

    def stop(self) -> None:
        """A clean stop: no more heartbeats, and the instance leaves the registry."""
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            with schema_context("public"):
                registry.service_deregister(service_id=self.service_id, reason="mcp_serve stopped")
        except Exception:  # noqa: BLE001 - its TTL and grace clean up after it anyway
            logger.warning("Deregistration of %s failed", self.service_id, exc_info=True)
        finally:
            connection.close()
