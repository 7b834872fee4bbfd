"""How an attempt ends, recorded: success, failure (retried with backoff or final), timeout, loss.

The success of a package run by a cluster worker is recorded where the ORM
broker acknowledges the package (tasks.engine.orm_broker.acknowledge, in the
cluster's monitor), in the statement that deletes it; anywhere else
(the Redis broker, a run executed in-process) run_execute records it itself.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone
from psycopg.types.json import Jsonb

from core.db import soft_write
from core.masking import mask_text
from tasks import conf
from tasks.engine.broker import enqueue_run
from tasks.engine.dependencies import release_dependents
from tasks.engine.sql import render
from tasks.models import LEASED, Status, TaskAttempt, TaskRun

logger = logging.getLogger("tasks")


def backoff_delay(*, run: TaskRun, failed_attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with a cap, shortened by up to `backoff_jitter` of itself at random."""
    nominal = min(run.backoff_cap, run.backoff_base * (2 ** max(failed_attempt - 1, 0)))
    jitter = (rng or random).uniform(0, run.backoff_jitter) if run.backoff_jitter else 0.0
    return nominal * (1.0 - jitter)


def record_lost_attempt(run: TaskRun, *, now) -> None:
    """Write the row of the attempt whose worker died: attempt rows are written when an attempt ends."""
    if not run.attempts:
        return
    error = "The worker died during this attempt; its package was delivered again."
    # Rows written at the start of an attempt (before tasks 0002) are closed in place.
    if TaskAttempt.objects.filter(run=run, outcome=TaskAttempt.Outcome.RUNNING).update(
            outcome=TaskAttempt.Outcome.LOST, finished_at=now, error=error):
        return
    started = (run.lease_until - dt.timedelta(seconds=run.timeout + conf.lease_grace())) if run.lease_until else now
    TaskAttempt.objects.bulk_create(
        [TaskAttempt(run=run, number=run.attempts, outcome=TaskAttempt.Outcome.LOST, worker_pid=run.worker_pid,
                     started_at=started, finished_at=now, error=error)],
        ignore_conflicts=True,  # the attempt was closed already (a watchdog recorded its timeout)
    )


def finish(run: TaskRun, *, status: str, now, error: str = "", tb: str = "", result=None,
            also: Iterable[str] = ()) -> None:
    """Record a terminal status (and the fields named in `also`); after commit, move the runs waiting on this one."""
    run.status = status
    run.finished_at = now
    run.lease_until = None
    run.error = mask_text(error)[:10000]
    run.traceback = mask_text(tb)[:20000]
    fields = ["status", "finished_at", "lease_until", "error", "traceback", "updated_at", *also]
    if status == Status.SUCCEEDED:
        run.result, run.progress = result, 1.0
        fields += ["result", "progress"]
    # Otherwise the progress stays as last reported (the run object may be a partial one from the claim).
    run.save(update_fields=fields)
    run_id = run.pk
    transaction.on_commit(lambda: release_dependents(run_id))


def json_safe(value):
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return repr(value)


_SUCCESS_TYPES = {"now": "timestamptz", "id": "uuid", "number": "integer", "pid": "integer",
                  "started": "timestamptz", "ack_id": "bigint", "result": "jsonb"}


_FAST_SUCCESS = """
WITH finished AS (
    UPDATE {run} SET status = 'succeeded', finished_at = %(now)s, lease_until = NULL, error = '', traceback = '',
        result = %(result)s, progress = 1, worker_pid = %(pid)s, started_at = COALESCE(started_at, %(started)s),
        updated_at = now()
    WHERE id = %(id)s AND status IN ('claimed', 'running') AND attempts = %(number)s
    RETURNING id
), closed AS (
    INSERT INTO {attempt} (run_id, number, outcome, worker_pid, schema_name, started_at, finished_at, error)
    SELECT id, %(number)s, 'succeeded', %(pid)s, 'public', %(started)s, %(now)s, '' FROM finished
    ON CONFLICT DO NOTHING
), acknowledged AS (
    DELETE FROM {queue} WHERE id = %(ack_id)s
)
SELECT EXISTS (SELECT 1 FROM finished), EXISTS (SELECT 1 FROM {edges} WHERE {to_column} = %(id)s)
"""


def success_values(run: TaskRun, attempt: TaskAttempt, value) -> dict:
    """What recording a success needs, as plain values (it may travel to the cluster's monitor)."""
    return {"run_id": str(run.pk), "attempt": attempt.number, "worker_pid": attempt.worker_pid,
            "started_at": attempt.started_at, "finished_at": timezone.now(), "result": json_safe(value)}


def record_success(*, run_id: str, attempt: int, worker_pid: int | None, started_at, finished_at, result,
                   ack_id: int | None = None) -> bool:
    """Mark the attempt succeeded, write its row and delete its ORM package, in one statement.

    False when the attempt was closed meanwhile (its watchdog recorded a timeout): that record stands.
    """

    # Relaxed commit: this statement also acknowledges the ORM package, so a crash loses both or
    # neither; otherwise the next synchronous commit on the server flushes it (one WAL stream).
    recorded, has_dependents = soft_write(render(_FAST_SUCCESS), {
        "now": finished_at, "id": run_id, "number": attempt, "pid": worker_pid, "started": started_at,
        "ack_id": ack_id, "result": None if result is None else Jsonb(result),
    }, prepared=_SUCCESS_TYPES)
    if recorded and has_dependents:
        transaction.on_commit(lambda: release_dependents(run_id))
    return recorded


def record_acknowledged_success(ack) -> bool:
    """The broker's acknowledgement of a run's package (tasks.engine.broker.Acknowledgement): record its success.

    In the cluster's monitor. A success it cannot record is logged, not raised (the monitor goes on):
    not recorded and not acknowledged, the package comes back after its lease and the run's claim
    records this attempt as lost and runs it again.
    """
    try:
        return record_success(**ack.success, ack_id=int(ack) or None)
    except Exception:
        logger.exception("Could not record the success of task run %s", ack.success.get("run_id"))
        return False


# The successes of a batch of runs in one statement: each run succeeded (if its attempt is still the one
# recorded), its attempt row, and the deletion of the packages (ack_id; none on Redis). The batch is one jsonb
# array, so the prepared statement is planned once for every batch size. Returns the succeeded runs that
# have dependents (to release after commit).
_BATCH_SUCCESS = """
WITH input AS (
    SELECT * FROM jsonb_to_recordset(%(batch)s) AS i(run_id uuid, attempt integer, worker_pid integer,
        started_at timestamptz, finished_at timestamptz, result jsonb, ack_id bigint)
), finished AS (
    UPDATE {run} AS r SET status = 'succeeded', finished_at = i.finished_at, lease_until = NULL, error = '',
        traceback = '', result = i.result, progress = 1, worker_pid = i.worker_pid,
        started_at = COALESCE(r.started_at, i.started_at), updated_at = now()
    FROM input AS i
    WHERE r.id = i.run_id AND r.status IN ('claimed', 'running') AND r.attempts = i.attempt
    RETURNING r.id, i.attempt, i.worker_pid, i.started_at, i.finished_at
), closed AS (
    INSERT INTO {attempt} (run_id, number, outcome, worker_pid, schema_name, started_at, finished_at, error)
    SELECT id, attempt, 'succeeded', worker_pid, 'public', started_at, finished_at, '' FROM finished
    ON CONFLICT DO NOTHING
), acknowledged AS (
    DELETE FROM {queue} WHERE id IN (SELECT ack_id FROM input WHERE ack_id IS NOT NULL)
)
SELECT count(*), array_remove(array_agg(CASE WHEN EXISTS (SELECT 1 FROM {edges} AS e WHERE e.{to_column} = f.id)
    THEN f.id END), NULL) FROM finished AS f
"""


def _batch_item(success: dict, ack_id: int | None) -> dict:
    item = dict(success)
    for key in ("started_at", "finished_at"):
        if item.get(key) is not None:
            item[key] = item[key].isoformat()
    item["ack_id"] = ack_id
    return item


def record_successes(acknowledgements: list) -> int:
    """Record the successes a batch of acknowledgements carries, their packages deleted, in one statement.

    How many runs it recorded as succeeded (an attempt closed meanwhile, by its watchdog's timeout, keeps
    that record). If the batch cannot be recorded whole, each is recorded alone (logged, never raised),
    so one bad success does not hold back the others.
    """
    if not acknowledgements:
        return 0
    # In run order: two monitors writing overlapping batches lock rows in the same order.
    ordered = sorted(acknowledgements, key=lambda ack: str(ack.success.get("run_id")))
    batch = Jsonb([_batch_item(ack.success, int(ack) or None) for ack in ordered])
    try:
        # Relaxed commit, as record_success: the successes and their packages' deletion go (or are lost) together.
        recorded, released = soft_write(render(_BATCH_SUCCESS), {"batch": batch}, prepared={"batch": "jsonb"})
    except Exception:
        logger.warning("Could not record a batch of %d successes at once; recording them one by one",
                       len(ordered), exc_info=True)
        return sum(1 for ack in ordered if record_acknowledged_success(ack))
    for run_id in released or ():
        transaction.on_commit(lambda run_id=run_id: release_dependents(run_id))
    return recorded


def record_hard_timeout(*, run: TaskRun, attempt: TaskAttempt) -> str:
    """Record an attempt that outlived its timeout (called by the worker's watchdog thread)."""
    return record_failure(
        run, attempt, TaskAttempt.Outcome.TIMED_OUT,
        f"Timed out after {run.timeout} s: the task did not stop at the timeout signal, so its worker is "
        "killed.", "",
    )


def close_attempt(attempt: TaskAttempt, outcome: str, error: str, retry_delay: float | None = None) -> None:
    attempt.outcome = outcome
    attempt.finished_at = timezone.now()
    attempt.error = mask_text(error)[:10000]
    attempt.retry_delay = retry_delay
    if attempt._state.adding:
        attempt.save(force_insert=True)
    else:
        attempt.save(update_fields=["outcome", "finished_at", "error", "retry_delay"])


def record_failure(run: TaskRun, attempt: TaskAttempt, outcome: str, error: str, tb: str) -> str:
    now = timezone.now()
    with transaction.atomic():
        run = TaskRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in LEASED or run.attempts != attempt.number:
            # This attempt was closed meanwhile (its watchdog recorded a timeout): that record stands.
            return "superseded"
        run.started_at = run.started_at or attempt.started_at
        if run.cancel_requested:
            close_attempt(attempt, outcome, error)
            finish(run, status=Status.CANCELLED, now=now, error=f"Cancelled; the last attempt failed: {error}",
                    tb=tb, also=["started_at"])
            return "cancelled"
        retries_used = run.attempts - run.lost_attempts - 1
        if retries_used < run.max_retries:
            delay = backoff_delay(run=run, failed_attempt=retries_used + 1)
            close_attempt(attempt, outcome, error, retry_delay=delay)
            run.status = Status.RETRYING
            # From the attempt's recorded end, not from `now`: the row lock may have taken a while under load,
            # and a retry must never start sooner than its delay after the end its attempt row shows.
            run.next_attempt_at = attempt.finished_at + dt.timedelta(seconds=delay)
            run.lease_until = None
            run.error, run.traceback = mask_text(error)[:10000], mask_text(tb)[:20000]
            run.worker_pid = attempt.worker_pid
            run.save(update_fields=["status", "next_attempt_at", "lease_until", "error", "traceback", "worker_pid",
                                    "started_at", "updated_at"])
            eta, run_id, priority, timeout, tenant_id = (run.next_attempt_at, run.pk, run.priority, run.timeout,
                                                         run.tenant_id)
            transaction.on_commit(lambda: enqueue_run(run_id, eta=eta, priority=priority, timeout=timeout,
                                                   tenant_id=tenant_id))
            return "retrying"
        close_attempt(attempt, outcome, error)
        run.worker_pid = attempt.worker_pid
        finish(run, status=Status.FAILED, now=now, error=error, tb=tb, also=["worker_pid", "started_at"])
    return "failed"
