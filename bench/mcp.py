#!/usr/bin/env python
"""The MCP surface against the REST API for the same data: latency of one call, and throughput.

In a database of its own (courtside_bench_mcp): four tenants on the PROFESSIONAL plan, each with
the active players and a generated season of 200 games. Two servers on this machine, started by
this script: `manage.py mcp_serve` (uvicorn, the SDK's stateless Streamable HTTP, SSE answers) and
gunicorn with deploy/gunicorn.conf.py (the REST API as deployed: gthread, WEB_THREADS threads), one
process each (BENCH_WEB_WORKERS for more web workers; BENCH_MCP_ARGS adds mcp_serve options, e.g.
--json-response). Both meter every call through the same admission (quota, burst, lease).

1. Latency, one client, alternating rounds: MCP `player_averages` through the SDK's ClientSession
   vs `GET /api/v1/players/<id>/averages/` with httpx2, the REST answer computed (a new query
   string per request defeats the response cache) and cached (as clients see it). p50 and p99.
2. Throughput, 16 concurrent clients across the 4 tenants (a client process per tenant, as agents on
   other machines would be), BENCH_ROUNDS alternating windows of BENCH_SECONDS each way: MCP calls/s
   vs REST requests/s (computed), and the ratio MCP/REST (target >= 0.8).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import ROOT, percentile, setup_django

# This file is named as issue 20 asks, and Python puts its folder first on sys.path: without this,
# `import mcp` would find this script instead of the SDK.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "4"))
PER_ROUND = int(os.environ.get("BENCH_REQUESTS", "100"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
WARM_UP = 5.0  # seconds for the clients to connect (and MCP's to initialize) before counting
CLIENTS = 16
TENANTS = [f"benchmcp{i}" for i in range(1, 5)]


def _start(args: list[str], ready, *, manage: bool = True) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "manage.py", *args] if manage else args, cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = ready(line)
        if found:
            return process, found
        if process.poll() is not None:
            break
    raise SystemExit(f"{args[0]} did not start: {line}")


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _mcp_client(url: str, host: str, key: str, players: list[int], work):
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    picks = itertools.cycle(players)
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}", "Host": host}, timeout=60) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()

                async def call():
                    result = await session.call_tool("player_averages", {"player_id": next(picks)})
                    assert not result.is_error, result.content
                return await work(call)


async def _rest_client(url: str, host: str, key: str, players: list[int], work, cached: bool = False):
    import httpx2

    picks, misses = itertools.cycle(players), itertools.count()
    async with httpx2.AsyncClient(base_url=url, headers={"Authorization": f"Api-Key {key}", "Host": host},
                                  timeout=60) as http:
        async def call():
            # A new query string per request: the page is computed, not answered by the response cache.
            path = f"/api/v1/players/{players[0]}/averages/" if cached else \
                f"/api/v1/players/{next(picks)}/averages/?n={next(misses)}"
            response = await http.get(path)
            assert response.status_code == 200, response.text
        return await work(call)


def _counted(start_at: float, stop_at: float):
    """Calls a client completes between start_at and stop_at (its connection and session made before)."""
    async def work(call):
        done = 0
        while time.time() < stop_at:
            await call()
            done += time.time() >= start_at
        return done
    return work


def _crowd_process(kind: str, url: str, host: str, key: str, players: list[int], clients: int,
                   start_at: float, stop_at: float) -> int:
    """One client process: `clients` concurrent clients of one tenant; the calls they completed in the window."""
    import anyio

    client = _mcp_client if kind == "mcp" else _rest_client

    async def crowd():
        totals = []

        async def one():
            totals.append(await client(url, host, key, players, _counted(start_at, stop_at)))

        async with anyio.create_task_group() as group:
            for _ in range(clients):
                group.start_soon(one)
        return sum(totals)

    return anyio.run(crowd)



def main() -> None:
    setup_django("courtside_bench_mcp")
    import anyio
    from django.core.management import call_command
    from django_tenants.utils import schema_context

    from configuration import config
    from league import services as league_services
    from league.models import Game, Player
    from tenants import services
    from tenants.models import Tenant, UsageDay

    services.public_tenant_ensure()
    keys, players = {}, {}
    for schema in TENANTS:
        tenant = Tenant.objects.filter(schema_name=schema).first() or services.tenant_create(
            name=f"Bench {schema}", schema_name=schema, plan="PROFESSIONAL")
        call_command("migrate_schemas", schema_name=schema, interactive=False, verbosity=0)
        with schema_context(schema):
            if not Game.objects.exists():
                league_services.reference_load(active_only=True)
                league_services.season_generate(games=200, seed=7)
            players[schema] = list(Player.objects.filter(stat_lines__isnull=False).distinct()
                                   .values_list("pk", flat=True)[:50])
        keys[schema] = services.api_key_create(tenant=tenant, name="bench", scope="read")[1]
        config.set("api.rate_limit_per_minute", 1_000_000, tenant=schema, changed_by="bench/mcp.py")
    UsageDay.objects.filter(tenant__schema_name__in=TENANTS).delete()

    mcp, found = _start(["mcp_serve", "--port", "0", "--no-register", *os.environ.get("BENCH_MCP_ARGS", "").split()],
                        lambda line: re.search(r"listening on http://[^:]+:(\d+)/mcp", line))
    mcp_port = int(found.group(1))
    rest_port = _free_port()
    # The REST API as deployed (deploy/gunicorn.conf.py: gthread), one process like the one MCP process.
    os.environ.update(COURTSIDE_PORT=str(rest_port), WEB_CONCURRENCY=os.environ.get("BENCH_WEB_WORKERS", "1"))
    rest, _ = _start([str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "deploy/gunicorn.conf.py"],
                     lambda line: "Booting worker" in line, manage=False)
    mcp_url, rest_url = f"http://127.0.0.1:{mcp_port}/mcp", f"http://127.0.0.1:{rest_port}"
    where = {"mcp": (mcp_url, lambda schema: f"{schema}.localhost:{mcp_port}", keys),
             "rest": (rest_url, lambda schema: f"{schema}.localhost", keys)}

    async def timed(call):
        await call()  # warm-up: connection, first query
        times = []
        for _ in range(PER_ROUND):
            t0 = time.perf_counter()
            await call()
            times.append(time.perf_counter() - t0)
        return times

    try:
        latency = {"mcp": [], "rest computed": [], "rest cached": []}
        for _ in range(ROUNDS):
            first = TENANTS[0]
            latency["mcp"] += anyio.run(_mcp_client, mcp_url, f"{first}.localhost:{mcp_port}", keys[first],
                                        players[first], timed)
            latency["rest computed"] += anyio.run(_rest_client, rest_url, f"{first}.localhost", keys[first],
                                                  players[first], timed)
            latency["rest cached"] += anyio.run(_rest_client, rest_url, f"{first}.localhost", keys[first],
                                                players[first], timed, True)
        print(f"one player_averages call, one client, {ROUNDS * PER_ROUND} calls each way, same run:")
        for name, values in latency.items():
            p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
            print(f"  {name:14} p50 {p50:6.1f} ms   p99 {p99:6.1f} ms")
        ratio = percentile(latency["rest computed"], 0.5) / percentile(latency["mcp"], 0.5)
        print(f"  p50 REST computed / MCP: {ratio:.2f} (1.0 = as fast)")

        def crowd(kind: str) -> float:
            """CLIENTS clients in one process per tenant (as agents on other machines), counted in one window."""
            url, host_of, _ = where[kind]
            start_at = time.time() + WARM_UP
            stop_at = start_at + SECONDS
            with ProcessPoolExecutor(len(TENANTS), mp_context=multiprocessing.get_context("fork")) as pool:
                counts = pool.map(_crowd_process, *zip(*[
                    (kind, url, host_of(schema), keys[schema], players[schema], CLIENTS // len(TENANTS),
                     start_at, stop_at) for schema in TENANTS], strict=True))
                return sum(counts) / SECONDS

        # Alternating windows, so the load of the machine (shared, here) falls on both alike.
        mcp_rates, rest_rates = [], []
        for _ in range(ROUNDS):
            mcp_rates.append(crowd("mcp"))
            rest_rates.append(crowd("rest"))
        mcp_rate, rest_rate = sum(mcp_rates) / ROUNDS, sum(rest_rates) / ROUNDS
        print(f"{CLIENTS} concurrent clients across {len(TENANTS)} tenants, {ROUNDS} alternating windows of "
              f"{SECONDS:.0f} s each way:")
        print(f"  MCP {mcp_rate:7.1f} calls/s   REST {rest_rate:7.1f} requests/s (computed)   "
              f"ratio MCP/REST {mcp_rate / rest_rate:.2f} (target >= 0.8)")
        calls = sum(UsageDay.objects.filter(tenant__schema_name__in=TENANTS).values_list("api_calls", flat=True))
        print(f"  (calls in the ledger, both surfaces: {calls})")
    finally:
        for process in (mcp, rest):
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
