"""Hot reload across processes: one daemon thread per process LISTENs for committed changes.

Every write sends `NOTIFY courtside_config` in its transaction (PostgreSQL
delivers it at commit, never for a rollback). The thread holds its own psycopg
connection, drops the owner's snapshots on each notification and runs the
watchers; between notifications it polls the layers' sources (files) twice a
second. The owner is the store (configuration/store.py), passed in: this
module imports nothing of the store.
"""

from __future__ import annotations

import logging
import os
import threading

import psycopg
from django.core import mail
from django.db import connections

logger = logging.getLogger("configuration")

NOTIFY_CHANNEL = "courtside_config"
POLL_SECONDS = 0.5


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
        while not self.stop.is_set():
            try:
                with psycopg.connect(
                    autocommit=True, application_name="courtside-config-listener", connect_timeout=5,
                    **{k: v for k, v in self.conninfo.items() if v is not None},
                ) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    # Changes made while nobody listened are unknown: start from the database.
                    self.owner.invalidate()
                    self.ready.set()
                    while not self.stop.is_set():
                        notified = False
                        for _ in conn.notifies(timeout=POLL_SECONDS, stop_after=1):
                            notified = True
                        if notified:
                            self.owner.invalidate()
                            self._run_watchers()
                        else:
                            self._idle()
            except Exception as exc:  # the database restarts or is unreachable: retry, keep serving
                self.ready.clear()
                logger.warning("configuration listener lost its connection (%s); retrying", type(exc).__name__)
                self.stop.wait(1.0)
            finally:
                self._close_django_connection()

    def _run_watchers(self) -> None:
        if self.owner.has_watchers():
            try:
                self.owner.check_watchers()
            except Exception:
                logger.exception("configuration watchers failed")
            self._close_django_connection()

    def _idle(self) -> None:
        try:
            if self.owner.idle():
                self._close_django_connection()
        except Exception:
            logger.exception("configuration file check failed")

    @staticmethod
    def _close_django_connection() -> None:
        # This thread's own Django connection, opened by a watcher reload: never kept open,
        # so a test database can be dropped and idle processes hold one connection only.
        connections["default"].close()
