"""Debian's PgBouncer (`make pgbouncer` installs it) in transaction pooling mode on a free loopback port.

    python tests/pgbouncer.py run -- <command ...>

starts one in front of DATABASE_URL's server (default 127.0.0.1:5432), runs
the command with DATABASE_URL through it, DATABASE_DIRECT_URL past it and
DATABASE_POOL_MODE=transaction, then stops it and exits with the command's
status (a pool of 40 server connections: a test's open transaction holds one
while its live server's threads take others). Tests use `PgBouncer` directly;
a pool of one makes interleaving of clients on one server connection the
rule, not luck (tests/deploy/test_pgbouncer.py).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgBouncer:
    def __init__(self, *, host: str = "127.0.0.1", port: int = 5432, user: str = "postgres", pool_size: int = 4):
        self.server_host, self.server_port, self.user, self.pool_size = host, port, user, pool_size
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="courtside-pgbouncer-"))
        self.process: subprocess.Popen | None = None

    def start(self) -> PgBouncer:
        os.chmod(self.dir, 0o777)  # run as root, PgBouncer drops to the postgres user (-u), which writes here
        (self.dir / "users.txt").write_text(f'"{self.user}" ""\n')
        (self.dir / "pgbouncer.ini").write_text(f"""[databases]
* = host={self.server_host} port={self.server_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.dir}/users.txt
pool_mode = transaction
default_pool_size = {self.pool_size}
min_pool_size = 0
max_client_conn = 1000
max_db_connections = 0
server_lifetime = 3600
ignore_startup_parameters = extra_float_digits,options
logfile = {self.dir}/pgbouncer.log
pidfile = {self.dir}/pgbouncer.pid
admin_users = {self.user}
""")
        for name in ("users.txt", "pgbouncer.ini"):
            os.chmod(self.dir / name, 0o644)
        args = [BINARY, str(self.dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            # PgBouncer refuses to run as root. It runs as the owner of the server's socket directory when it
            # reaches the server on a socket (the embedded server's lives in its pgdata, mode 0700: as postgres
            # every server connection failed with "Permission denied"), else as postgres.
            socket_dir = Path(self.server_host)
            owner = pwd.getpwuid(socket_dir.stat().st_uid).pw_name if socket_dir.is_absolute() else "postgres"
            args[1:1] = ["-u", owner if owner != "root" else "postgres"]
        # Its log goes to a file, never to a pipe: nobody reads a pipe while it runs, and once the pipe's 64 KiB
        # were full (a line per connection: the rehearsal's kills and restarts got there in two minutes) PgBouncer
        # blocked on its next log line and stopped answering anyone.
        self._stderr = open(self.dir / "pgbouncer.stderr", "wb")  # noqa: SIM115 - closed by stop()
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._stderr,
                                        start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None:
                    error = (self.dir / "pgbouncer.stderr").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"pgbouncer exited: {error}") from None
                time.sleep(0.1)
        raise RuntimeError("pgbouncer did not start listening")

    def url(self, database: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if getattr(self, "_stderr", None) is not None:
            self._stderr.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _run(command: list[str]) -> int:
    direct = os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/courtside_pgbouncer"
    parts = urlsplit(direct)
    bouncer = PgBouncer(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                        user=parts.username or "postgres", pool_size=40).start()
    try:
        env = {**os.environ, "DATABASE_URL": bouncer.url(parts.path.lstrip("/")),
               "DATABASE_DIRECT_URL": urlunsplit(parts), "DATABASE_POOL_MODE": "transaction"}
        return subprocess.run(command, env=env).returncode
    finally:
        bouncer.stop()


if __name__ == "__main__":
    if len(sys.argv) < 4 or sys.argv[1] != "run" or sys.argv[2] != "--":
        sys.exit("usage: python tests/pgbouncer.py run -- <command ...>")
    sys.exit(_run(sys.argv[3:]))
