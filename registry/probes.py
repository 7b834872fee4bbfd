"""Probes of every probed check kind, run concurrently on one event loop, each bounded by its own timeout.

What a probe does is its kind's (`registry.kinds`); what happens around it is here, the same for every kind:
the concurrency bound, the timeout over the whole probe, and errors turned into a critical outcome.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

from registry import kinds
from registry.status import Status


@dataclass(frozen=True)
class ProbeOutcome:
    check_id: int
    status: str  # passing, warning or critical, before flap damping
    output: str
    duration_ms: float


async def _probe(client: httpx.AsyncClient, semaphore: asyncio.Semaphore, spec: dict) -> ProbeOutcome:
    async with semaphore:
        started = time.perf_counter()
        try:
            kind = kinds.get(spec["kind"])
            if kind is None:
                raise LookupError(kinds.unknown_kind_message(spec["kind"]))
            # wait_for bounds the whole probe: httpx's timeout is per read, a trickling server could outlast it.
            status, output = await asyncio.wait_for(kind.probe(spec, http=client), timeout=spec["timeout"])
        except (TimeoutError, httpx.TimeoutException):
            status, output = Status.CRITICAL, f"timed out after {spec['timeout']:g} s"
        except Exception as error:  # noqa: BLE001 - OSError, httpx's errors, a kind's own: the check's output
            status, output = Status.CRITICAL, f"{type(error).__name__}: {error}"[:500]
        return ProbeOutcome(spec["pk"], status, output, (time.perf_counter() - started) * 1000)


async def _run_all(specs: list[dict], concurrency: int) -> list[ProbeOutcome]:
    semaphore = asyncio.Semaphore(max(1, concurrency))
    limits = httpx.Limits(max_connections=max(1, concurrency), max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, follow_redirects=False, headers={"User-Agent": "courtside-health"}) \
            as client:
        return await asyncio.gather(*(_probe(client, semaphore, spec) for spec in specs))


def run_all(specs: list[dict], *, concurrency: int = 64) -> list[ProbeOutcome]:
    """Probe every spec (dicts of registry.kinds.PROBE_FIELDS)."""
    return asyncio.run(_run_all(specs, concurrency))
