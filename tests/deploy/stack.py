"""The production stack as deploy/README.md runs it: gunicorn (gthread) and a django-q2 cluster, DEBUG=False.

Both processes run under backoffice.settings.production against the test
database; the server binds port 0 and the port is read from gunicorn's own
"Listening at" line. Static files are collected into a folder of the test's.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")
SECRET_KEY = "x7#kq9!vz2@pl4$mn8^tr6&yb3*wd5(hc1)fj0-ge_s+ua=oi~ZLXCVBNMASDFGHJKQWERTY"
METRICS_TOKEN = "metrics-scrape-token-of-the-tests-only-5c1f0e"
# Behind the TLS-terminating proxy: it tells Django the request came in over HTTPS.
HTTPS = {"X-Forwarded-Proto": "https"}


def production_env(database_url: str, static_root: Path, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("COURTSIDE_", "PROMETHEUS_", "WEB_", "DJANGO_")) and k not in (
                 "DATABASE_URL", "SECRET_KEY", "REDIS_URL", "DEBUG", "PYTEST_CURRENT_TEST")}
    return {
        **clean,
        "DJANGO_SETTINGS_MODULE": "backoffice.settings.production",
        "SECRET_KEY": SECRET_KEY,
        "COURTSIDE_SECRET_KEYS": "Qk4cYbqvTJ3vWZ5m0hJ9o4b2tQ3y7r8xJ1c2d3e4f5g=",
        "DATABASE_URL": database_url,
        "ALLOWED_HOSTS": "localhost,.localhost,127.0.0.1",
        "STATIC_ROOT": str(static_root),
        "MFA_REQUIRED_FOR_OPERATOR_SUPERUSERS": "0",
        "TENANT_POOL_SIZE": "0",
        "COURTSIDE_HOST": "127.0.0.1",
        "COURTSIDE_PORT": "0",
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "4",
        **extra,
    }


class Process:
    """A child process in a session of its own; its output is kept (and echoed on failure) by a reader thread."""

    def __init__(self, args: list[str], env: dict[str, str]):
        self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match:
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if match := compiled.search(line):
                    return match
            if self.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{pattern!r} never appeared; output:\n{self.output[-4000:]}")

    def stop(self, timeout: float = 25.0) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._reader.join(5)


def collectstatic(env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=180)


_collected: dict[str, Path] = {}


def collected_static_root(database_url: str, base: Path) -> Path:
    """A STATIC_ROOT holding the production static files, collected once per test session: collectstatic
    (hashed names and compressed copies of some 700 files) takes seconds, and what it writes depends on the
    code only, not on the environment a test gives its server."""
    if "root" not in _collected:
        root = base / "production-static"
        collectstatic(production_env(database_url, root))
        _collected["root"] = root
    return _collected["root"]


def start_server(env: dict[str, str]) -> tuple[Process, str]:
    server = Process([str(GUNICORN), "-c", "deploy/gunicorn.conf.py"], env)
    try:
        port = server.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the workers import Django after the master listens
            try:
                httpx.get(f"{url}/healthz", headers=HTTPS, timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
    except BaseException:
        server.stop()
        raise
    return server, url


def start_cluster(env: dict[str, str]) -> Process:
    return Process([sys.executable, "manage.py", "qcluster"], env)
