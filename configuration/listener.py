"""Hot reload across processes: one daemon thread per process LISTENs for committed changes.

Every write sends `NOTIFY courtside_config` in its transaction (PostgreSQL
delivers it at commit, never for a rollback). The thread holds its own psycopg
connection, drops the owner's snapshots on each notification and runs the
watchers; between notifications it polls the layers' sources (files) twice a
second. The owner is the store (configuration/store.py), passed in: this
module imports nothing of the store.

A lost connection (the server restarted, the backend was terminated, a peer
gone silent and caught by TCP keepalives on both ends) is retried at once, then
with a short jittered backoff capped at RECONNECT_MAX_SECONDS; on every
(re)connection the snapshots are dropped and the watchers run, since whatever
was committed while nobody listened was never notified. The thread keeps its
own Django connection (for the watchers' rebuilds) between changes, under
Django's CONN_MAX_AGE and health checks; a broken one is replaced and the work
retried once.
"""

from __future__ import annotations

import logging
import os
import random
import threading

import psycopg
from django.core import mail
from django.db import connections

from core.keepalives import keepalive_options

logger = logging.getLogger("configuration")

NOTIFY_CHANNEL = "courtside_config"
POLL_SECONDS = 0.5
# TCP keepalives of the LISTEN connection, on both ends: core.keepalives.
# Reconnection: at once, then 50 ms doubling up to the cap, each wait jittered to 50-100 % of it (a restarted
# server is not met by every process in the same instant).
RECONNECT_FIRST_SECONDS = 0.05
RECONNECT_MAX_SECONDS = 1.0


def next_reconnect_delay(delay: float) -> float:
    """The wait before the attempt after one that waited `delay` (0: the first retry, at once)."""
    return min(max(delay * 2, RECONNECT_FIRST_SECONDS), RECONNECT_MAX_SECONDS)


def in_test_environment() -> bool:
    # django.test.utils.setup_test_environment() (Django's runner, pytest-django) installs mail.outbox.
    return hasattr(mail, "outbox")


class Listener(threading.Thread):
    """LISTENs for committed changes on its own connection and drops the process's snapshots."""

    def __init__(self, owner, settings_dict: dict):
        super().__init__(name="courtside-config-listener", daemon=True)
        self.owner = owner
        self.pid = os.getpid()
        self.stop = threading.Event()
        self.ready = threading.Event()
        options = settings_dict.get("OPTIONS", {})
        self.conninfo = {
            "dbname": settings_dict.get("NAME"),
            # The embedded server is reached on a socket given in OPTIONS (DATABASE_URL's ?host=&port=).
            "host": settings_dict.get("HOST") or options.get("host") or None,
            "port": settings_dict.get("PORT") or options.get("port") or None,
            "user": settings_dict.get("USER") or None,
            "password": settings_dict.get("PASSWORD") or None,
        }
        # LISTEN does not pass through PgBouncer's transaction pooling (a listener through it heard 0 of 20
        # notifications): behind one, listen on the direct connection DATABASE_DIRECT_URL names (its server and
        # credentials; the database stays the default connection's, so a test database is followed too).
        from django.conf import settings

        direct = getattr(settings, "DATABASE_DIRECT", None) or {}
        for key, setting in (("host", "HOST"), ("port", "PORT"), ("user", "USER"), ("password", "PASSWORD")):
            if direct.get(setting):
                self.conninfo[key] = direct[setting]

    def run(self) -> None:
        delay = 0.0  # the first retry after a lost connection is immediate
        try:
            while not self.stop.is_set():
                try:
                    with psycopg.connect(
                        autocommit=True, application_name="courtside-config-listener", connect_timeout=5,
                        **keepalive_options(), **{k: v for k, v in self.conninfo.items() if v is not None},
                    ) as conn:
                        conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                        # Changes committed while nobody listened (before the first connection, or while the last
                        # one was down) were never notified: start from the database, and run the watchers now
                        # rather than at the next change.
                        self._reload()
                        self.ready.set()
                        while not self.stop.is_set():
                            notified = False
                            for _ in conn.notifies(timeout=POLL_SECONDS, stop_after=1):
                                notified = True
                            delay = 0.0  # the connection served a whole poll: the next loss retries at once
                            if notified:
                                self._reload()
                            else:
                                self._idle()
                except Exception as exc:  # the database restarts or is unreachable: retry, keep serving
                    self.ready.clear()
                    logger.warning("configuration listener lost its connection (%s); retrying in %.2f s",
                                   type(exc).__name__, delay)
                    # Its Django connection likely went with it (a restart): the next use opens a fresh one.
                    self._close_django_connection()
                    if delay:
                        self.stop.wait(delay * random.uniform(0.5, 1.0))
                    delay = next_reconnect_delay(delay)
        finally:
            self._close_django_connection()

    def _reload(self) -> None:
        """Drop the snapshots; the watchers compare their views now (rebuilt on this thread's connection)."""
        self.owner.invalidate()
        if self.owner.has_watchers():
            self._with_database(self.owner.check_watchers, "configuration watchers failed")

    def _idle(self) -> None:
        self._with_database(self.owner.idle, "configuration file check failed")
        # Closed once CONN_MAX_AGE has passed (or at once with 0), as a request's connection would be.
        connections["default"].close_if_unusable_or_obsolete()

    @staticmethod
    def _with_database(work, failure: str) -> None:
        """Run work() on this thread's Django connection, kept open between changes; a broken one replaced once."""
        connection = connections["default"]
        for attempt in (1, 2):
            try:
                work()
                return
            except Exception:
                # A connection the server ended (restart, pg_terminate_backend, idle timeout) fails its first
                # statement: replace it and try once more; anything else is logged and the listener goes on.
                connection.close()
                if attempt == 2:
                    logger.exception(failure)

    @staticmethod
    def _close_django_connection() -> None:
        # This thread's own Django connection, opened by a watcher reload: closed when the thread stops (so a
        # test database can be dropped) or loses its LISTEN connection.
        connections["default"].close()
