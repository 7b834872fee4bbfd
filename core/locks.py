"""PostgreSQL advisory locks: one table of keys, one context manager.

After NetBox's `netbox/constants.py` ADVISORY_LOCK_KEYS and its `advisory_lock`
context manager: every lock the project takes is named here, with a key chosen
once, so no two features can pick the same number by accident and a key seen in
`pg_locks` can be looked up by searching this file.

Two forms, which PostgreSQL keeps apart (a one-key lock never meets a two-key one):
- one key (bigint): one holder at a time of a whole job (a pool refill, a sweep, a rollout);
- two keys (int4 class, int4 subkey): one holder per thing, the class from this table and the
  subkey a row id or `hashtext(name)` of a service id or a schema.

Some keys are taken inside PL/pgSQL, where Python cannot reach; they are listed
here too (`SQL_ONLY`), and the migrations that install those functions read them
from this table.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from core.keepalives import keepalive_options

ADVISORY_LOCK_KEYS: dict[str, int] = {
    # One-key locks: one holder at a time, across every process and machine using the database.
    "pool-refill": 1129270612,          # tenants.provisioning.pool_refill: one refill of the schema pool
    "registry-sweep": 0x5E5_5E5,        # the service registry's health sweep: one sweeper
    "rollout": 0x0C0_5C4E,              # schemas rollout: one rollout ("courtside schemas")
    # Two-key locks: the class key here, the second key per thing.
    "service-registration": 0x5E5,      # subkey hashtext(service id): first registrations of one id serialise
    "schema-migration": 0x5C4E_0001,    # subkey hashtext(schema): one migrator of a schema (non-atomic plans)
    "request-admission": 1129270611,    # subkey tenant id, in SQL: public.courtside_admit_request's lease count
    "etcd-mirror": 0x0E7C_D001,         # subkey hashtext(prefix): one etcd mirror a key prefix, the others standbys
}

# Taken only in SQL (one-key form on hashtext of a qualified table name), listed so the whole picture is here:
SQL_ONLY = {
    "row-quota": "hashtext(<schema>.<table>)",          # courtside_enforce_row_quota: count, then insert
    "data-generation": "hashtext(<schema>.league_datageneration)",  # league.0004: prune of the generation log
}


def lock_key(name: str) -> int:
    """The key of a named lock; a KeyError names the table to add it to."""
    try:
        return ADVISORY_LOCK_KEYS[name]
    except KeyError:
        raise KeyError(f"No advisory lock {name!r}: add it to core.locks.ADVISORY_LOCK_KEYS.") from None


def _statement(function: str, name: str, subkey) -> tuple[str, list]:
    key = lock_key(name)
    if subkey is None:
        return f"SELECT {function}(%s)", [key]
    if isinstance(subkey, int):
        return f"SELECT {function}(%s, %s)", [key, subkey]
    return f"SELECT {function}(%s, hashtext(%s))", [key, subkey]


def _connection(using):
    return connections[using or "default"] if using is None or isinstance(using, str) else using


def _direct_conninfo(connection) -> dict | None:
    """psycopg arguments for a session past PgBouncer (DATABASE_DIRECT_URL's server and credentials, the
    database of `connection`), or None when no pooler stands between the process and PostgreSQL."""
    direct = getattr(settings, "DATABASE_DIRECT", None) or {}
    if not direct:
        if getattr(settings, "DATABASE_POOL_MODE", "") == "transaction":
            raise ImproperlyConfigured(
                "DATABASE_POOL_MODE=transaction: session advisory locks need DATABASE_DIRECT_URL (a connection "
                "past PgBouncer); through transaction pooling they neither exclude nor release reliably.")
        return None
    conninfo = {"dbname": connection.settings_dict.get("NAME"), "host": direct.get("HOST") or None,
                "port": direct.get("PORT") or None, "user": direct.get("USER") or None,
                "password": direct.get("PASSWORD") or None}
    return {key: value for key, value in conninfo.items() if value is not None}


@contextmanager
def session_connection(using=None, *, application_name: str = "courtside-lock"):
    """A PostgreSQL session of its own for the block (closed at the end: its session locks go with it).

    Past PgBouncer (DATABASE_DIRECT_URL) when one is configured, else a new connection like `using`'s.
    `application_name` (63 bytes at most) is what pg_stat_activity, and lock_sessions(), show of it.
    The session has TCP keepalives on both ends (core.keepalives): a holder cut off by the network loses its
    lock to the standbys within about 25 s, not the kernel's two hours.
    """
    import psycopg

    connection = _connection(using)
    conninfo = _direct_conninfo(connection)
    if conninfo is None:
        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        conninfo = params
    conninfo = {**keepalive_options(), **conninfo}
    if conninfo["options"] != keepalive_options()["options"]:  # the connection's own options, and ours
        conninfo["options"] = f"{keepalive_options()['options']} {conninfo['options']}"
    session = psycopg.connect(autocommit=True, application_name=application_name[:63],
                              connect_timeout=10, **conninfo)
    try:
        yield session
    finally:
        session.close()


def _hold(connection, name: str, subkey, wait: bool) -> bool:
    sql, params = _statement("pg_advisory_lock" if wait else "pg_try_advisory_lock", name, subkey)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (result,) = cursor.fetchone()
    return result is not False  # pg_advisory_lock returns void: it waited until it held the lock


@contextmanager
def advisory_lock(name: str, subkey: str | int | None = None, *, wait: bool = True, using=None):
    """Hold the session-level advisory lock `name` (with `subkey`: the two-key form) for the block.

    Yields whether it is held: wait=False tries once and yields False when another session holds
    it (the block then decides what to do); wait=True waits, and yields True.
    `using`: a connection alias, a Django connection or a psycopg one (a rollout holds its lock on a
    session_connection of its own).

    Behind PgBouncer in transaction pooling (DATABASE_DIRECT_URL set) a session lock taken through the
    pooler lands on whichever server connection runs that statement: another client handed the same
    server connection would share it, and the unlock may run on another one. There the lock is held on a
    session of its own past the pooler, on `using`'s database, and ends with the block.
    """
    connection = _connection(using)
    # A psycopg connection given (session_connection's) is a session the caller chose: used as it is.
    if hasattr(connection, "settings_dict") and _direct_conninfo(connection) is not None:
        with session_connection(connection) as session:
            yield _hold(session, name, subkey, wait)
        return
    acquired = _hold(connection, name, subkey, wait)
    try:
        yield acquired
    finally:
        if acquired:
            unlock, params = _statement("pg_advisory_unlock", name, subkey)
            with connection.cursor() as cursor:
                cursor.execute(unlock, params)


def advisory_lock_until_commit(name: str, subkey: str | int | None = None, *, using=None) -> None:
    """Take the transaction-level form of lock `name`: held until the caller's transaction commits or rolls back.

    For a lock that must cover rows the transaction writes after it (two first registrations of one id).
    """
    connection = _connection(using)
    if not connection.in_atomic_block:
        raise RuntimeError(f"advisory_lock_until_commit({name!r}) needs an open transaction.atomic().")
    sql, params = _statement("pg_advisory_xact_lock", name, subkey)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def hold_when_free(name: str, subkey: str | int | None = None, *, session, stop: threading.Event,
                   every: float = 1.0, on_wait=None) -> bool:
    """Wait on `session` (a session_connection: the lock stays with it) until it holds lock `name`; False if
    `stop` is set first.

    It waits in PostgreSQL (pg_advisory_lock under a lock_timeout of `every` seconds, again and again), so the
    lock goes to it as soon as the holder's session ends, however that ends (a SIGKILLed holder included), and
    meanwhile the wait shows in pg_locks as not granted (lock_sessions). `on_wait()` is called once, when the
    first try finds the lock held by another session.
    """
    import psycopg

    sql, params = _statement("pg_advisory_lock", name, subkey)
    with session.cursor() as cursor:
        cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{max(1, int(every * 1000))}ms"])
        try:
            while not stop.is_set():
                try:
                    cursor.execute(sql, params)
                    return True
                except psycopg.errors.LockNotAvailable:
                    if on_wait is not None:
                        on_wait()
                        on_wait = None
            return False
        finally:
            if not session.closed and not session.broken:
                cursor.execute("SELECT set_config('lock_timeout', '0', false)")


def lock_sessions(name: str, subkey: str | int | None = None, *, using=None) -> list[dict]:
    """The sessions holding (granted) or waiting for lock `name` in this database: granted, backend pid,
    application_name; the holder first."""
    key = lock_key(name)
    if subkey is None:
        match = "l.objsubid = 1 AND l.classid::bigint = %s AND l.objid::bigint = %s"
        params = [key >> 32, key & 0xFFFFFFFF]
    else:
        second = "%s::bigint" if isinstance(subkey, int) else "hashtext(%s)::bigint"
        match = f"l.objsubid = 2 AND l.classid::bigint = %s AND l.objid::bigint = ({second} & 4294967295)"
        params = [key & 0xFFFFFFFF, subkey]
    connection = _connection(using)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.granted, l.pid, coalesce(a.application_name, '') FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND " + match +
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY l.granted DESC, a.backend_start", params)
        return [{"granted": granted, "backend_pid": pid, "application_name": application}
                for granted, pid, application in cursor.fetchall()]
