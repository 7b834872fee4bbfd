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

from contextlib import contextmanager

from django.db import connections

ADVISORY_LOCK_KEYS: dict[str, int] = {
    # One-key locks: one holder at a time, across every process and machine using the database.
    "pool-refill": 1129270612,          # tenants.provisioning.pool_refill: one refill of the schema pool
    "registry-sweep": 0x5E5_5E5,        # the service registry's health sweep: one sweeper
    "rollout": 0x0C0_5C4E,              # schemas rollout: one rollout ("courtside schemas")
    # Two-key locks: the class key here, the second key per thing.
    "service-registration": 0x5E5,      # subkey hashtext(service id): first registrations of one id serialise
    "schema-migration": 0x5C4E_0001,    # subkey hashtext(schema): one migrator of a schema (non-atomic plans)
    "request-admission": 1129270611,    # subkey tenant id, in SQL: public.courtside_admit_request's lease count
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


@contextmanager
def advisory_lock(name: str, subkey: str | int | None = None, *, wait: bool = True, using=None):
    """Hold the session-level advisory lock `name` (with `subkey`: the two-key form) for the block.

    Yields whether it is held: wait=False tries once and yields False when another session holds
    it (the block then decides what to do); wait=True waits, and yields True.
    `using`: a connection alias or a connection object (a rollout holds its lock on a connection of its own).
    """
    connection = _connection(using)
    sql, params = _statement("pg_advisory_lock" if wait else "pg_try_advisory_lock", name, subkey)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (result,) = cursor.fetchone()
    acquired = result is not False  # pg_advisory_lock returns void: it waited until it held the lock
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
