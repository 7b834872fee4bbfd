"""The task the day's tenant submits through its own API: it watches the configuration from inside the cluster.

Registered with the task layer's public registry by the throwaway `courtside_day`
app (its tasks.py imports this module), so a tenant may submit it like any
product task. It runs in the tenant's schema, reports progress while it waits,
and records when (wall clock, comparable across processes) it first read each
value the operator is about to set, through the product's own readers.
"""

from __future__ import annotations

import time

from django.db import connection

from tasks.registry import TENANT, register_task

NAME = "operator_day.watch_config"
WANTED = {"type": ["integer", "null"], "minimum": 0}


@register_task(
    NAME, scope=TENANT, timeout=90,
    schema={"type": "object", "additionalProperties": False, "required": ["page_size", "burst_limit"],
            "properties": {"page_size": WANTED, "burst_limit": WANTED,
                           "seconds": {"type": "number", "minimum": 0, "maximum": 60}}},
    description="Wait for a page size and a burst limit, and say when this worker first read each.",
)
def watch_config(ctx, *, page_size, burst_limit, seconds: float = 30.0):
    from configuration import config, keys

    config.listener_ready(timeout=10)
    wanted = {"page_size": page_size, "burst_limit": burst_limit}
    read = {"page_size": keys.api_page_size, "burst_limit": keys.api_burst_limit}
    seen: dict[str, float] = {}
    before = {name: reader() for name, reader in read.items()}
    ctx.progress(0.5, "waiting for the operator's change")
    deadline = time.monotonic() + seconds
    while len(seen) < len(wanted) and time.monotonic() < deadline:
        for name, reader in read.items():
            if name not in seen and reader() == wanted[name]:
                seen[name] = time.time()
        time.sleep(0.01)
    ctx.progress(1.0, "seen" if len(seen) == len(wanted) else "gave up")
    return {"schema": connection.schema_name, "before": before, "seen_at": seen,
            "after": {name: reader() for name, reader in read.items()}}
