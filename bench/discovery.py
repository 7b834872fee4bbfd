"""Service registry benchmark: discover() latency with 10,000 instances, heartbeats/s over HTTP.

    .venv/bin/python bench/discovery.py            (DATABASE_URL, or the embedded PostgreSQL)

Creates its own throwaway database (bench_discovery_<db>), fills it with
10,000 instances over 100 services, and prints:
  * discover(name, tags=[...]) p50/p99 (target p50 <= 1 ms), next_instance()
    p50/p99, against a baseline measured in the same run: the same lookup
    done the naive way (model instances, no values rows);
  * heartbeats per second over real HTTP from 16 concurrent keep-alive
    clients to 2 Django server processes (target >= 1,000/s on 2 cores),
    through the full stack (the API view) and through the WSGI fast path
    (services/fastpath.py), against a baseline measured in the same run: the
    same servers answering a JSON 404 (Django + tenant resolution alone).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings.test")

INSTANCES = 10_000
SERVICES = 100
CLIENTS = 16
SERVER_PROCESSES = 2
HEARTBEAT_SECONDS = 5.0


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(fn, calls: int) -> list[float]:
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


# --- server mode: one Django process serving on a shared SO_REUSEPORT socket ---------------------------------------

def serve(port: int, *, fast: bool) -> None:
    import django

    django.setup()
    import logging

    logging.getLogger("django.request").setLevel(logging.ERROR)  # the 404 baseline would log every request
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    class ReusePortServer(ThreadedWSGIServer):
        daemon_threads = True
        request_queue_size = 128

        def server_bind(self):
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            super().server_bind()

        def get_request(self):
            # Headers and body leave in separate writes: without TCP_NODELAY, Nagle's
            # algorithm and delayed ACKs hold every response ~40 ms (any real server sets it).
            request, address = super().get_request()
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return request, address

    server = ReusePortServer(("127.0.0.1", port), QuietHandler, ipv6=False)
    if fast:
        from registry.fastpath import HeartbeatFastPath

        server.set_app(HeartbeatFastPath(WSGIHandler()))
    else:
        server.set_app(WSGIHandler())
    server.serve_forever()


# --- HTTP load: asyncio keep-alive clients, raw HTTP/1.1 (cheap on the client side) -----------------------------

async def _client(port: int, request: bytes, stop_at: float, counts: list[int], index: int, statuses: set) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            statuses.add(int(head.split(b" ", 2)[1]))
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            counts[index] += 1
            if b"connection: close" in head.lower():
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def _load(port: int, requests: list[bytes], seconds: float) -> tuple[float, set]:
    counts = [0] * len(requests)
    statuses: set = set()
    stop_at = time.perf_counter() + seconds
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, r, stop_at, counts, i, statuses) for i, r in enumerate(requests)))
    return sum(counts) / (time.perf_counter() - started), statuses


def load(port: int, requests: list[bytes], seconds: float) -> tuple[float, set]:
    asyncio.run(_load(port, requests, 0.5))  # warm-up: connections, DB connections, caches
    return asyncio.run(_load(port, requests, seconds))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the bench servers did not listen on {port}")


def _database_url(settings_dict: dict) -> str:
    from core.embedded_db import url_from_settings

    return url_from_settings(settings_dict)


def main() -> None:
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    base_name = settings.DATABASES["default"]["NAME"]
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = f"bench_discovery_{base_name}"
    connection.settings_dict["TEST"] = {**connection.settings_dict.get("TEST", {}),
                                        "NAME": f"bench_discovery_{base_name}"}
    print(f"Creating bench_discovery_{base_name} and migrating it…", flush=True)
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(connection)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def run(connection) -> None:
    from registry import balancing, registration, selectors, tokens
    from registry.models import HealthCheck, ServiceInstance
    from tenants.services import public_tenant_ensure

    public_tenant_ensure(domains=["localhost", "127.0.0.1"])
    rng = random.Random(42)
    tag_pool = ["api", "production", "staging", "eu", "us", "canary"]
    rows = [
        ServiceInstance(service_id=f"svc-{n % SERVICES:03d}-{n:05d}", name=f"svc-{n % SERVICES:03d}",
                        host=f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", port=8000 + n % 1000,
                        tags=rng.sample(tag_pool, 3), weight=1 + n % 5, status="passing")
        for n in range(INSTANCES)
    ]
    ServiceInstance.objects.bulk_create(rows, batch_size=2000)
    HealthCheck.objects.bulk_create([HealthCheck(instance=row, name="ttl", kind="ttl", interval=30.0,
                                                 status="passing") for row in rows], batch_size=2000)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"{ServiceInstance.objects.count()} instances in {SERVICES} services "
          f"({INSTANCES // SERVICES} per service)")

    names = [f"svc-{n:03d}" for n in range(SERVICES)]
    calls = 3000

    def discover():
        return selectors.discover(rng.choice(names), tags=["api"])

    def naive():
        return list(ServiceInstance.objects.filter(name=rng.choice(names), tags__contains=["api"]))

    def next_one():
        return balancing.next_instance(rng.choice(names))

    for fn in (discover, naive, next_one):
        timed(fn, 200)  # warm-up
    fast, slow, rr = timed(discover, calls), timed(naive, calls), timed(next_one, calls)
    print(f"discover(name, tags=['api']) over {INSTANCES} instances, {calls} calls: "
          f"p50 {percentile(fast, 50):.3f} ms, p99 {percentile(fast, 99):.3f} ms (target p50 <= 1 ms)")
    print(f"  baseline, naive ORM lookup (model instances): p50 {percentile(slow, 50):.3f} ms, "
          f"p99 {percentile(slow, 99):.3f} ms; ratio baseline/discover p50 = "
          f"{statistics.median(slow) / statistics.median(fast):.2f}x")
    print(f"next_instance(name) weighted round-robin: p50 {percentile(rr, 50):.3f} ms, "
          f"p99 {percentile(rr, 99):.3f} ms")

    # Heartbeats over HTTP: 16 instances of one service, each with its own client connection.
    _, token = tokens.token_create(service_name="bench-web")
    for n in range(CLIENTS):
        registration.service_register(service_id=f"bench-web-{n}", name="bench-web", host="127.0.0.1", port=9000 + n,
                                  checks=[{"kind": "ttl", "ttl": "30s"}])
        registration.service_heartbeat(service_id=f"bench-web-{n}")
    connection.close()

    env = {**os.environ, "DATABASE_URL": _database_url(connection.settings_dict), "LOG_LEVEL": "ERROR",
           "DJANGO_SETTINGS_MODULE": os.environ["DJANGO_SETTINGS_MODULE"]}
    heartbeat_requests = [
        (f"PUT /api/v1/services/heartbeat/bench-web-{n} HTTP/1.1\r\nHost: localhost\r\n"
         f"Authorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n").encode()
        for n in range(CLIENTS)
    ]
    floor_requests = [b"GET /api/v1/no-such-page/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"] * CLIENTS
    figures = {}
    for label, extra in (("django", []), ("fast", ["--fast"])):
        port = _free_port()
        servers = [subprocess.Popen([sys.executable, __file__, "--serve", str(port), *extra], cwd=ROOT, env=env)
                   for _ in range(SERVER_PROCESSES)]
        try:
            _wait_for_port(port)
            rate, statuses = load(port, heartbeat_requests, HEARTBEAT_SECONDS)
            if statuses != {200}:
                raise SystemExit(f"heartbeats answered {sorted(statuses)}, expected only 200")
            figures[label] = rate
            if label == "django":
                figures["floor"], floor_statuses = load(port, floor_requests, HEARTBEAT_SECONDS)
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                server.wait(timeout=30)
    print(f"heartbeats over HTTP, {CLIENTS} concurrent keep-alive clients, {SERVER_PROCESSES} server processes, "
          f"{HEARTBEAT_SECONDS:g} s each (target >= 1,000/s):")
    print(f"  through Django's full stack (the API view):          {figures['django']:,.0f}/s")
    print(f"  through registry.fastpath.HeartbeatFastPath (WSGI):  {figures['fast']:,.0f}/s")
    print(f"  baseline, the same Django servers answering a JSON 404 ({sorted(floor_statuses)}): "
          f"{figures['floor']:,.0f}/s")
    print(f"  ratios to the baseline: full stack {figures['django'] / figures['floor']:.2f}, "
          f"fast path {figures['fast'] / figures['floor']:.2f}")
    through_the_production_server(env, heartbeat_requests, floor_requests)


def through_the_production_server(env: dict, heartbeat_requests: list[bytes], floor_requests: list[bytes]) -> None:
    """The same heartbeats through gunicorn as deploy/ runs it (gthread, the fast path in backoffice.wsgi)."""
    import serving

    process, port = serving.start("gunicorn", env, workers=SERVER_PROCESSES, threads=8)
    try:
        rate, statuses = serving.load(port, heartbeat_requests, HEARTBEAT_SECONDS)
        if set(statuses) != {200}:
            raise SystemExit(f"heartbeats through gunicorn answered {statuses}, expected only 200")
        floor, _ = serving.load(port, floor_requests, HEARTBEAT_SECONDS)
    finally:
        serving.stop(process)
    print(f"  through the production server (gunicorn, {SERVER_PROCESSES} workers x 8 threads, same run): "
          f"{rate:,.0f} heartbeats/s (target >= 1,000/s); its JSON 404 baseline {floor:,.0f}/s, "
          f"ratio {rate / floor:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve, fast=arguments.fast)
    else:
        main()
