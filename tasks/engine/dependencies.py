"""Runs waiting on others: released or cancelled when what they wait on ends, in two statements."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import connection, transaction

from tasks.engine.broker import enqueue_runs
from tasks.engine.sql import render

logger = logging.getLogger("tasks")

# The waiting runs a failed or cancelled dependency dooms, and everything waiting on them in turn, in one
# statement (a recursive CTE: a chain of any length, no recursion in Python). Rows are locked in id order,
# so two cascades that meet cannot deadlock; a run told to go on (run_if_dependency_fails) stops the cascade.
_CANCEL_DOOMED = """
WITH RECURSIVE candidates AS (
    SELECT e.from_taskrun_id AS id FROM {edges} e WHERE e.to_taskrun_id = ANY(%(ended)s::uuid[])
    UNION SELECT unnest(%(waiting)s::uuid[])
), doomed(id) AS (
    SELECT r.id FROM {run} r
    WHERE r.id IN (SELECT id FROM candidates) AND r.status = 'waiting' AND NOT r.run_if_dependency_fails
        AND EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                    WHERE e.from_taskrun_id = r.id AND d.status IN ('failed', 'cancelled'))
    UNION
    SELECT r.id FROM doomed JOIN {edges} e ON e.to_taskrun_id = doomed.id JOIN {run} r ON r.id = e.from_taskrun_id
    WHERE r.status = 'waiting' AND NOT r.run_if_dependency_fails
), locked AS (
    SELECT id FROM {run} WHERE id IN (SELECT id FROM doomed) AND status = 'waiting' ORDER BY id FOR UPDATE
)
UPDATE {run} AS r SET status = 'cancelled', cancel_requested = true, finished_at = now(),
    error = 'A dependency failed or was cancelled.', updated_at = now()
FROM locked WHERE r.id = locked.id
RETURNING r.id
"""


# The waiting runs among the dependents of runs that ended (or given) whose dependencies have all ended,
# none failed or cancelled unless the run goes on regardless: queued, and returned for the broker.
_QUEUE_READY = """
WITH candidates AS (
    SELECT e.from_taskrun_id AS id FROM {edges} e WHERE e.to_taskrun_id = ANY(%(ended)s::uuid[])
    UNION SELECT unnest(%(waiting)s::uuid[])
), ready AS (
    SELECT r.id FROM {run} r
    WHERE r.id IN (SELECT id FROM candidates) AND r.status = 'waiting'
        AND NOT EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                        WHERE e.from_taskrun_id = r.id AND d.status NOT IN ('succeeded', 'failed', 'cancelled'))
        AND (r.run_if_dependency_fails
             OR NOT EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                            WHERE e.from_taskrun_id = r.id AND d.status IN ('failed', 'cancelled')))
    ORDER BY r.id FOR UPDATE OF r
)
UPDATE {run} AS r SET status = 'queued', updated_at = now()
FROM ready WHERE r.id = ready.id
RETURNING r.id, r.run_at, r.priority, r.timeout, r.tenant_id
"""


def dependents_settle(*, ended: Iterable = (), waiting: Iterable = ()) -> dict[str, int]:
    """Move what runs that `ended` (or the `waiting` runs given) leave decided, in one transaction.

    Waiting runs a failed or cancelled dependency dooms are cancelled with all that waits on them; those
    whose dependencies have all ended are queued and, once committed, enqueued. Two statements, whatever
    the length of the chains. Safe to repeat and to run twice at once: each row moves once.
    """
    ended = [str(run_id) for run_id in ended]
    waiting = [str(run_id) for run_id in waiting]
    if not ended and not waiting:
        return {"cancelled": 0, "queued": 0}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(render(_CANCEL_DOOMED), {"ended": ended, "waiting": waiting})
        cancelled = [str(row[0]) for row in cursor.fetchall()]
        cursor.execute(render(_QUEUE_READY), {"ended": ended + cancelled, "waiting": waiting})
        queued = cursor.fetchall()

        if queued:
            transaction.on_commit(lambda: enqueue_runs(queued))  # together: one round trip to the broker
    if cancelled:
        logger.info("Cancelled %s waiting run(s) whose dependency failed or was cancelled.", len(cancelled))
    return {"cancelled": len(cancelled), "queued": len(queued)}


def release_dependents(run_id) -> None:
    dependents_settle(ended=[run_id])
