"""The one-rollout-at-a-time lock (core.locks "rollout") on a connection of its own."""

from __future__ import annotations

from contextlib import contextmanager

from django.db import connection

from core.errors import DomainError
from core.locks import advisory_lock, lock_key, session_connection

# One key for every rollout, on every machine: advisory locks are per database (core.locks).
ROLLOUT_LOCK_KEY = lock_key("rollout")


class RolloutRefused(DomainError):
    code = "rollout_locked"
    status = 409


@contextmanager
def rollout_lock():
    """Hold the PostgreSQL advisory lock for a rollout on a connection of its own.

    Its own connection, because the rollout closes the shared one before it
    forks workers, and closing would release a session-level lock.
    """
    # core.locks.session_connection: past PgBouncer when DATABASE_DIRECT_URL is set; closed at the end,
    # which ends the session and the lock with it.
    with session_connection(connection) as lock_connection:
        with advisory_lock("rollout", wait=False, using=lock_connection) as acquired:
            if not acquired:
                holder = _lock_holder(lock_connection)
                raise RolloutRefused(
                    f"Another rollout is already running{holder}; wait for it to finish, then retry (or --resume).",
                    detail={"lock_key": ROLLOUT_LOCK_KEY},
                )
            yield


def _lock_holder(lock_connection) -> str:
    with lock_connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.objid = %s AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [ROLLOUT_LOCK_KEY & 0xFFFFFFFF],
        )
        row = cursor.fetchone()
    return f" (PostgreSQL backend pid {row[0]}, since {row[3]:%Y-%m-%d %H:%M:%S %Z})" if row else ""
