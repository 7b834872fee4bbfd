"""HTTP and TCP probes, run concurrently on one event loop, each bounded by its own timeout."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from registry.models import Status


@dataclass(frozen=True)
class ProbeOutcome:
    check_id: int
    status: str  # passing, warning or critical, before flap damping
    output: str
    duration_ms: float


def _http_status(code: int, expected: int | None) -> str:
    if expected:
        return Status.PASSING if code == expected else Status.CRITICAL
    if 200 <= code < 300:
        return Status.PASSING
    # Consul's rule: 429 Too Many Requests is a warning, anything else critical.
    return Status.WARNING if code == 429 else Status.CRITICAL


async def _probe_http(client: httpx.AsyncClient, spec: dict) -> tuple[str, str]:
    response = await client.get(spec["http_url"], timeout=spec["timeout"])
    return _http_status(response.status_code, spec["http_expected_status"]), f"HTTP GET {spec['http_url']}: " \
        f"{response.status_code} {response.reason_phrase}"


async def _probe_tcp(spec: dict) -> tuple[str, str]:
    _, writer = await asyncio.open_connection(spec["tcp_host"], spec["tcp_port"])
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return Status.PASSING, f"TCP connect {spec['tcp_host']}:{spec['tcp_port']}: success"


async def _probe(client: httpx.AsyncClient, semaphore: asyncio.Semaphore, spec: dict) -> ProbeOutcome:
    async with semaphore:
        started = time.perf_counter()
        try:
            # wait_for bounds the whole probe: httpx's timeout is per read, a trickling server could outlast it.
            coroutine = _probe_http(client, spec) if spec["kind"] == "http" else _probe_tcp(spec)
            status, output = await asyncio.wait_for(coroutine, timeout=spec["timeout"])
        except (TimeoutError, httpx.TimeoutException):
            status, output = Status.CRITICAL, f"timed out after {spec['timeout']:g} s"
        except (OSError, httpx.HTTPError) as error:
            status, output = Status.CRITICAL, f"{type(error).__name__}: {error}"[:500]
        return ProbeOutcome(spec["pk"], status, output, (time.perf_counter() - started) * 1000)


async def _run_all(specs: list[dict], concurrency: int) -> list[ProbeOutcome]:
    semaphore = asyncio.Semaphore(max(1, concurrency))
    limits = httpx.Limits(max_connections=max(1, concurrency), max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, follow_redirects=False, headers={"User-Agent": "courtside-health"}) \
            as client:
        return await asyncio.gather(*(_probe(client, semaphore, spec) for spec in specs))


def run_all(specs: list[dict], *, concurrency: int = 64) -> list[ProbeOutcome]:
    """Probe every spec (dicts with pk, kind, http_url, http_expected_status, tcp_host, tcp_port, timeout)."""
    return asyncio.run(_run_all(specs, concurrency))
