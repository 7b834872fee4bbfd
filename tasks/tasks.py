"""The task layer's own tasks: the recovery sweep (a system job), firing a schedule, and diagnostics.

The product's domain tasks live in their apps (league/tasks.py, tenants/tasks.py, the registry's and
security's tasks.py) and register here through tasks.registry. Each takes the TaskContext first, then
its validated arguments; tenant tasks already run inside their tenant's schema when called.
"""

from __future__ import annotations

import time

from django.db import connection, transaction
from django_q.exceptions import TimeoutException

from tasks import actions, pruning
from tasks.engine import recovery, workers
from tasks.models import TaskEffect
from tasks.registry import ANY, OPERATOR, register_task, system_job


@system_job("tasks.recover_stalled_runs", every_minutes=1, schedule_name="tasks: recover stalled runs",
            timeout=120)
def recover_stalled_runs(ctx):
    """Hand runs whose package was lost back to the broker, and report workers that stopped heartbeating."""
    recovered = recovery.recover_stalled_runs()
    lost = workers.workers_sweep()
    if lost:
        recovered["workers_lost"] = lost  # the key only when some were
    return recovered


@system_job("tasks.prune_runs", cron="45 3 * * *", schedule_name="tasks: prune finished runs", timeout=300,
            schema={"type": "object", "additionalProperties": False,
                    "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 36500},
                                   "batch_size": {"type": "integer", "minimum": 1, "maximum": pruning.MAX_BATCH}}})
def prune_runs(ctx, days: int | None = None, batch_size: int = pruning.PRUNE_BATCH):
    """Delete finished task runs older than TASKRUN_RETENTION_DAYS (or `days`), in batches; unfinished runs stay."""
    # Stops a minute before its timeout (at most the cluster's retry less the lease grace); what is left goes at
    # the next prune.
    return pruning.taskrun_prune(days=days, batch_size=batch_size, max_seconds=240, progress=ctx.progress)


# ------------------------------------------------------------ diagnostics

@register_task("system.noop", scope=ANY, timeout=30)
def noop(ctx):
    """Do nothing: measures the queue itself."""
    return None


@register_task("system.whoami", scope=ANY, timeout=30)
def whoami(ctx):
    """Report the schema and worker process this task ran in."""
    import os

    return {"schema": connection.schema_name, "pid": os.getpid(), "attempt": ctx.attempt}


@register_task(
    "system.sleep", scope=ANY, timeout=60,
    schema={"type": "object", "additionalProperties": False,
            "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 3600},
                           "steps": {"type": "integer", "minimum": 1, "maximum": 1000},
                           "ignore_timeout": {"type": "boolean"}}},
)
def sleep(ctx, seconds: float = 1.0, steps: int = 10, ignore_timeout: bool = False):
    """Sleep in steps, reporting progress at each (and so stopping soon after a cancel).

    With ignore_timeout it swallows the timeout signal, as code with a bare
    `except` does: what the worker's watchdog and django-q2's guard are for.
    """
    for step in range(steps):
        deadline = time.monotonic() + seconds / steps
        while (left := deadline - time.monotonic()) > 0:
            try:
                time.sleep(left)
            except TimeoutException:
                if not ignore_timeout:
                    raise
        ctx.progress((step + 1) / steps, f"step {step + 1} of {steps}")
    return {"slept": seconds}


@register_task(
    "system.fail", scope=ANY, timeout=30,
    schema={"type": "object", "additionalProperties": False,
            "properties": {"message": {"type": "string", "maxLength": 200},
                           "succeed_on_attempt": {"type": "integer", "minimum": 1}}},
)
def fail(ctx, message: str = "Failed on purpose.", succeed_on_attempt: int | None = None):
    """Raise an error (until a given attempt): exercises retries and backoff."""
    if succeed_on_attempt is not None and ctx.attempt >= succeed_on_attempt:
        return {"succeeded_on_attempt": ctx.attempt}
    raise RuntimeError(message)


@register_task(
    "system.tally", scope=ANY, timeout=30,
    schema={"type": "object", "additionalProperties": False,
            "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 60},
                           "label": {"type": "string", "maxLength": 100}}},
)
def tally(ctx, seconds: float = 0.0, label: str = ""):
    """Take a while, then record one side effect under the run's idempotency key (exactly once)."""
    steps = 5
    for step in range(steps):
        time.sleep(seconds / steps)
        ctx.progress((step + 1) / steps)
    with transaction.atomic():
        created = actions.effect_once(key=ctx.idempotency_key, run=ctx.run,
                                       detail={"label": label, "attempt": ctx.attempt})
    return {"recorded": created, "effects": TaskEffect.objects.filter(key=ctx.idempotency_key).count()}


@register_task("system.fire_schedules", scope=OPERATOR, timeout=60,
               schema={"type": "object", "additionalProperties": False,
                       "properties": {"schedule_id": {"type": "integer", "minimum": 1}},
                       "required": ["schedule_id"]})
def fire_schedule_now(ctx, schedule_id: int):
    """Fire one schedule now, outside its timetable."""
    run = actions.schedule_fire(schedule_id=schedule_id)
    return {"run": str(run.pk) if run else None}
