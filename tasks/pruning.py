"""The task runs' retention: finished runs older than TASKRUN_RETENTION_DAYS deleted in bounded batches.

Called by the system job `tasks.prune_runs` (tasks/tasks.py, daily). One rule for every tenant and for the
operator's own runs: a run is pruned when it finished (succeeded, failed, cancelled) before the cutoff.
Unfinished runs (waiting, queued, claimed, running, retrying) are kept whatever their age, and so is a
finished run some unfinished run still depends on (its outcome decides whether that run goes ahead).

Each batch is one short transaction over at most `batch_size` runs, taken oldest first with
`FOR UPDATE SKIP LOCKED` (a run being retried or read for update is left for the next prune, never waited
on): its attempts are deleted, its dependency edges dropped, the idempotency-ledger rows recorded under
the run's own key (`taskrun:<id>`, which no attempt can use again) deleted, ledger rows under keys a task
chose itself detached (they must keep meaning "at most once"), retries pointing at it detached, then the
runs deleted. Deleting finished runs leaves the tenants' unfinished-run counts (TenantRunCount) as they are:
its delete trigger counts only unfinished rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from tasks.models import TERMINAL, TaskAttempt, TaskEffect, TaskRun

logger = logging.getLogger("tasks")

PRUNE_BATCH = 5000  # runs per statement and transaction: bounded lock time and statement size
MAX_BATCH = 50_000

_TERMINAL = "(" + ", ".join(f"'{status}'" for status in TERMINAL) + ")"


def _tables() -> dict[str, str]:
    from django_tenants.utils import get_public_schema_name

    schema = get_public_schema_name()
    through = TaskRun.depends_on.through

    def table(model) -> str:
        return f'"{schema}"."{model._meta.db_table}"'

    return {"run": table(TaskRun), "attempt": table(TaskAttempt), "effect": table(TaskEffect),
            "edges": table(through), "from": through._meta.get_field("from_taskrun").column,
            "to": through._meta.get_field("to_taskrun").column}


# A prunable run: finished before the cutoff, and no unfinished run depends on it. `created_at < cutoff`
# (implied, since a run finishes after it is submitted) lets the scan use the taskrun_newest index.
_PRUNABLE = """
FROM {run} r
WHERE r.created_at < %(cutoff)s AND r.status IN {terminal} AND COALESCE(r.finished_at, r.updated_at) < %(cutoff)s
    AND NOT EXISTS (SELECT 1 FROM {edges} e JOIN {run} w ON w.id = e.{from_}
                    WHERE e.{to} = r.id AND w.status NOT IN {terminal})
"""

_COUNT = "SELECT count(*) " + _PRUNABLE
_COUNT_LIVE = "SELECT count(*) FROM {run} r WHERE r.created_at < %(cutoff)s AND r.status NOT IN {terminal}"
_BATCH = "SELECT r.id, r.tenant_id " + _PRUNABLE + "ORDER BY r.created_at LIMIT %(limit)s FOR UPDATE OF r SKIP LOCKED"


def _sql(template: str) -> str:
    tables = _tables()
    return template.format(run=tables["run"], edges=tables["edges"], from_=tables["from"], to=tables["to"],
                           terminal=_TERMINAL)


def _delete_batch(cursor, ids: list) -> dict[str, int]:
    t = _tables()
    cursor.execute(f"DELETE FROM {t['attempt']} WHERE run_id = ANY(%s)", [ids])
    attempts = cursor.rowcount
    cursor.execute(f"DELETE FROM {t['effect']} WHERE run_id = ANY(%s) AND key = 'taskrun:' || run_id::text", [ids])
    effects = cursor.rowcount
    cursor.execute(f"UPDATE {t['effect']} SET run_id = NULL WHERE run_id = ANY(%s)", [ids])
    detached = cursor.rowcount
    cursor.execute(f"DELETE FROM {t['edges']} WHERE {t['from']} = ANY(%s) OR {t['to']} = ANY(%s)", [ids, ids])
    cursor.execute(f"UPDATE {t['run']} SET retry_of_id = NULL WHERE retry_of_id = ANY(%s)", [ids])
    cursor.execute(f"DELETE FROM {t['run']} WHERE id = ANY(%s)", [ids])
    return {"runs": cursor.rowcount, "attempts": attempts, "effects_deleted": effects, "effects_detached": detached}


def taskrun_prune(*, days: int | None = None, batch_size: int = PRUNE_BATCH, now: dt.datetime | None = None,
                  max_seconds: float | None = None, progress=None) -> dict:
    """Delete the finished runs older than `days` (TASKRUN_RETENTION_DAYS), `batch_size` at a time.

    `progress(fraction, message)` is called after each batch (a task's ctx.progress: a cancel stops the
    prune there, every batch done so far kept). With `max_seconds` the prune stops after the batch that
    passes it (`complete` False: the next prune goes on). Returns the totals.
    """
    days = settings.TASKRUN_RETENTION_DAYS if days is None else days
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ValueError("The task run retention must be a whole number of days, at least 1.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"The batch size must be a whole number from 1 to {MAX_BATCH}.")
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    started = time.monotonic()
    params = {"cutoff": cutoff, "limit": batch_size}
    with connection.cursor() as cursor:
        cursor.execute(_sql(_COUNT), params)
        total = cursor.fetchone()[0]
    totals = {"cutoff": cutoff.isoformat(), "days": days, "batch_size": batch_size, "candidates": total,
              "runs": 0, "attempts": 0, "effects_deleted": 0, "effects_detached": 0, "batches": 0,
              "largest_batch": 0, "operator_runs": 0, "tenants": 0, "complete": True}
    tenants: set[int] = set()
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_sql(_BATCH), params)
            rows = cursor.fetchall()
            if not rows:
                break
            counts = _delete_batch(cursor, [row[0] for row in rows])
        for key, value in counts.items():
            totals[key] += value
        totals["batches"] += 1
        totals["largest_batch"] = max(totals["largest_batch"], len(rows))
        totals["operator_runs"] += sum(1 for _, tenant_id in rows if tenant_id is None)
        tenants.update(tenant_id for _, tenant_id in rows if tenant_id is not None)
        if progress is not None:
            progress(min(totals["runs"] / total, 1.0) if total else 1.0,
                     f"{totals['runs']} of {total} finished runs pruned")
        if len(rows) < batch_size:
            break
        if max_seconds is not None and time.monotonic() - started >= max_seconds:
            totals["complete"] = False
            break
    totals["tenants"] = len(tenants)
    with connection.cursor() as cursor:
        cursor.execute(_sql(_COUNT_LIVE), params)
        totals["unfinished_kept"] = cursor.fetchone()[0]  # older than the cutoff yet unfinished: worth a look
    logger.info("Task runs pruned: %s", totals)
    return totals
