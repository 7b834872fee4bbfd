"""Shared by the benchmarks that go through a real server: start one (gunicorn as deploy/ runs it, runserver,
granian), and load it from asyncio keep-alive clients speaking raw HTTP/1.1 (cheap on the client side)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"no server listened on {port}")


def available(kind: str) -> bool:
    return kind != "granian" or (BIN / "granian").exists() or shutil.which("granian") is not None


def start(kind: str, env: dict, *, workers: int = 2, threads: int = 4) -> tuple[subprocess.Popen, int]:
    """A server of `kind` on a free port, with the project's WSGI application (heartbeat fast path included)."""
    port = free_port()
    env = {**env, "COURTSIDE_HOST": "127.0.0.1", "COURTSIDE_PORT": str(port), "WEB_CONCURRENCY": str(workers),
           "WEB_THREADS": str(threads)}
    if kind == "gunicorn":
        args = [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "--log-level", "warning"]
    elif kind == "runserver":
        args = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload", "--skip-checks"]
    elif kind == "granian":
        args = [str(BIN / "granian"), "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers), "--blocking-threads", str(threads), "--log-level", "warning",
                "backoffice.wsgi:application"]
    else:
        raise ValueError(kind)
    # The server's stderr (tracebacks of 500s, worker boots and timeouts) goes to a log file, not to /dev/null:
    # a failing bench prints its tail (log_tail), which is how the cause of a 500 shows.
    log = tempfile.NamedTemporaryFile(prefix=f"bench_{kind}_", suffix=".log", delete=False)
    process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    log.close()
    process.log_path = log.name
    try:
        wait_for_port(port)
    except BaseException:
        print(log_tail(process), file=sys.stderr, flush=True)
        stop(process)
        raise
    return process, port


def log_tail(process: subprocess.Popen, lines: int = 60) -> str:
    """The last `lines` of a server's log (stdout and stderr), to print when a bench fails."""
    path = getattr(process, "log_path", None)
    if not path or not os.path.exists(path):
        return "(no server log)"
    with open(path, errors="replace") as log:
        tail = log.readlines()[-lines:]
    return f"--- last {len(tail)} lines of {path}:\n" + "".join(tail)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait(10)


async def _client(port, request: bytes, stop_at: float, counts: list[int], index: int, statuses: dict) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            statuses[status] = statuses.get(status, 0) + 1
            length, chunked = 0, False
            for line in head.split(b"\r\n"):
                lowered = line.lower()
                if lowered.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif lowered.startswith(b"transfer-encoding:") and b"chunked" in lowered:
                    chunked = True
            if chunked:
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
            elif length:
                await reader.readexactly(length)
            counts[index] += 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _load(port, requests, seconds):
    counts, statuses = [0] * len(requests), {}
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, r, stop_at, counts, i, statuses) for i, r in enumerate(requests)))
    return sum(counts) / (time.perf_counter() - started), statuses


def load(port: int, requests: list[bytes], seconds: float, *, warm_up: float = 1.0) -> tuple[float, dict]:
    """Requests per second over `seconds`, and the count of each status (after a warm-up)."""
    asyncio.run(_load(port, requests, warm_up))
    return asyncio.run(_load(port, requests, seconds))


def get(path: str, host: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()
