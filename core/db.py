"""Raw-SQL helpers for hot paths: a cursor on the driver connection, and soft (asynchronous-commit) writes.

Statements run here name every table with its schema, so django-tenants' per-cursor
`SET search_path` is not needed. Nothing here knows an app.
"""

from __future__ import annotations

import hashlib
import re
import weakref
from contextlib import contextmanager

import psycopg
from django.db import connections
from psycopg import errors, pq


@contextmanager
def raw_cursor(alias: str = "default"):
    """A cursor straight on the driver connection, for hot paths.

    django-tenants sends `SET search_path` before every Django cursor (we keep
    TENANT_LIMIT_SET_CALLS off, see PITFALLS), doubling round trips. Statements
    that name every table with its schema need no search_path: run them here.
    They stay in the connection's current transaction and leave its
    search_path untouched. Errors come out as Django's database errors and mark
    the connection, so close_old_connections() replaces a broken one.
    """
    connection = connections[alias]
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        yield cursor


@contextmanager
def prepared_cursor(alias: str = "default"):
    """A server-side binding cursor on the driver connection: `execute(..., prepare=True)` plans once.

    For the hottest statements only (a task submission): Django's cursors bind
    on the client, so PostgreSQL parses and plans every statement again. Same
    rules as raw_cursor; psycopg keeps the prepared statements per connection.
    """
    connection = connections[alias]
    connection.ensure_connection()
    if transaction_pooling():
        # Behind PgBouncer's transaction pooling a prepared statement stays on a server connection the next
        # transaction may not get: the driver's own cursor (ops.pooled_backend), which never prepares.
        with connection.wrap_database_errors, connection.connection.cursor() as cursor:
            yield cursor
        return
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def transaction_pooling() -> bool:
    """True behind a transaction-pooling PgBouncer (DATABASE_POOL_MODE=transaction): no session state."""
    from django.conf import settings

    return getattr(settings, "DATABASE_POOL_MODE", "") == "transaction"


_prepared_statements: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # driver connection -> names
_PARAMETER = re.compile(r"%\((\w+)\)s")


def _prepared_form(sql: str, types: dict[str, str]) -> tuple[str, str, list[str]]:
    """(statement name, PREPARE statement, parameter names in $n order) of a statement with %(name)s parameters."""
    order: list[str] = []

    def number(match):
        if match.group(1) not in order:
            order.append(match.group(1))
        return f"${order.index(match.group(1)) + 1}"

    body = _PARAMETER.sub(number, sql)
    name = "courtside_" + hashlib.sha1(body.encode()).hexdigest()[:16]
    return name, f"PREPARE {name} ({', '.join(types[key] for key in order)}) AS {body}", order


_prepared_forms: dict[tuple[str, tuple], tuple[str, str, list[str]]] = {}


def soft_write(sql: str, params, *, alias: str = "default", all_rows: bool = False,
               prepared: dict[str, str] | None = None):
    """Run one statement whose loss in a server crash is harmless or covered; return its first row (or all).

    With synchronous_commit off, its commit does not wait for the WAL flush:
    PostgreSQL never corrupts or reorders anything for it, at worst the last
    fraction of a second of such writes is lost in a crash. The WAL is one
    stream, so any later synchronous commit (of this or another connection)
    makes it durable too. Callers say why losing it is fine: a heartbeat is
    sent again; a task package's delivery, a run's claim and its success are
    each delivered again (the success deletes its ORM package in the same
    transaction, so a crash loses both or neither).

    Outside a transaction it goes out as one message, BEGIN; SET LOCAL ...;
    <sql>; COMMIT, on the raw connection: one round trip instead of five
    (django-tenants' per-cursor SET search_path, BEGIN, SET LOCAL, the
    statement, COMMIT); `sql` names its tables with their schema. Inside a
    caller's transaction it is a plain statement, so it never weakens the
    caller's commit.

    `prepared` (the SQL type of each %(name)s parameter, for the hottest
    statements): the statement is PREPAREd once per connection and the message
    EXECUTEs it, so PostgreSQL stops parsing and planning it each time (planning
    was a third of the task success statement's server time). Only for
    statements that find their rows by index: PostgreSQL keeps the plan while
    the tables grow and shrink, so it is planned with sequential scans off (a
    plan made while a queue table was empty would otherwise scan it whole once
    it holds thousands of rows).
    """
    connection = connections[alias]
    if connection.in_atomic_block:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if cursor.description is None:
                return [] if all_rows else None
            return cursor.fetchall() if all_rows else cursor.fetchone()
    connection.ensure_connection()
    raw = connection.connection  # Django's psycopg connection: client-side binding, several statements allowed
    statement, settings = sql, ["synchronous_commit TO OFF"]
    if prepared is not None and transaction_pooling():
        prepared = None  # a PREPAREd statement is session state: behind the pooler the statement goes out plain
    if prepared is not None:
        settings.append("enable_seqscan TO OFF")
        key = (sql, tuple(sorted(prepared.items())))
        form = _prepared_forms.get(key)
        if form is None:
            form = _prepared_forms[key] = _prepared_form(sql, prepared)
        name, prepare, order = form
        statement = f"EXECUTE {name} ({', '.join(f'%({key})s' for key in order)})"
    with connection.wrap_database_errors, raw.cursor() as cursor:
        for retry in (False, True):
            if prepared is not None and name not in _prepared_statements.setdefault(raw, set()):
                cursor.execute(prepare)
                _prepared_statements[raw].add(name)
            try:
                local = "".join(f"SET LOCAL {setting}; " for setting in settings)
                cursor.execute(f"BEGIN; {local}{statement}; COMMIT", params)
                break
            except errors.InvalidSqlStatementName:
                # Deallocated behind our back (DISCARD ALL): prepare it again, once.
                cursor.execute("ROLLBACK")
                _prepared_statements[raw].discard(name)
                if retry:
                    raise
            except Exception:
                cursor.execute("ROLLBACK")  # the failed statement left the explicit transaction open
                raise
        # Results come in order: BEGIN, each SET, the statement, COMMIT. Step to the statement's by position:
        # reading `description` builds its column objects each time, a tenth of a millisecond per call.
        for _ in range(1 + len(settings)):
            cursor.nextset()
        if cursor.pgresult is None or cursor.pgresult.status != pq.ExecStatus.TUPLES_OK:
            return [] if all_rows else None
        return cursor.fetchall() if all_rows else cursor.fetchone()
