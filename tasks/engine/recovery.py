"""The sweep that hands runs whose package was lost back to the broker (scheduled every minute)."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import connection
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from tasks.engine.broker import enqueue_runs, get_task_broker
from tasks.engine.dependencies import dependents_settle
from tasks.engine.sql import render
from tasks.models import LEASED, Status, TaskRun

logger = logging.getLogger("tasks")

# Waiting runs a lost release left behind: every dependency ended before the cutoff, or (for a run that
# does not go on regardless) one failed or was cancelled before it. Oldest first, a bounded sweep.
_STRANDED = """
SELECT r.id FROM {run} r
WHERE r.status = 'waiting' AND (
    NOT EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                WHERE e.from_taskrun_id = r.id
                    AND NOT (d.status IN ('succeeded', 'failed', 'cancelled')
                             AND COALESCE(d.finished_at, d.updated_at) < %(cutoff)s))
    OR (NOT r.run_if_dependency_fails
        AND EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                    WHERE e.from_taskrun_id = r.id AND d.status IN ('failed', 'cancelled')
                        AND COALESCE(d.finished_at, d.updated_at) < %(cutoff)s)))
ORDER BY r.created_at
LIMIT %(limit)s
"""


def recover_stalled_runs(*, stalled_for: float = 60.0) -> dict[str, int]:
    """Hand runs whose package is gone to the broker again; the run's claim decides what happens next.

    - `running` past its lease by `stalled_for` seconds: its worker died and no
      delivery came back (the Redis broker has no receipts; a whole cluster
      died there). The claim records the lost attempt and runs it again.
    - `queued` or `retrying`, due for `stalled_for` seconds, while the broker
      holds no package at all: the packages were lost (a Redis restarted
      without persistence, a process that died between commit and enqueue).
    - `waiting` whose dependencies ended `stalled_for` seconds ago (or one of
      them failed), its release lost the same ways: cancelled or queued as
      the release would have (at most 10,000 a sweep; the next takes the rest).
    Duplicate packages are harmless: the run's row lock lets one through.
    Scheduled every minute on the cluster (migration 0003).
    """
    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=stalled_for)
    recovered = {"running": 0, "queued": 0}
    recovered["running"] = enqueue_runs(
        (run.pk, None, run.priority, run.timeout, run.tenant_id)
        for run in TaskRun.objects.filter(status__in=LEASED, lease_until__lt=cutoff).only(
            "pk", "priority", "timeout", "tenant_id"))
    broker = get_task_broker()
    waiting = sum(getattr(broker, size)() for size in ("queue_size", "delayed_size", "lock_size")
                  if hasattr(broker, size))
    if waiting == 0:
        due = (TaskRun.objects.filter(status__in=[Status.QUEUED, Status.RETRYING])
               .annotate(due_at=Coalesce(F("next_attempt_at"), F("run_at"), F("created_at")))
               .filter(Q(due_at__lt=cutoff)).only("pk", "priority", "timeout", "tenant_id"))
        recovered["queued"] = enqueue_runs((run.pk, None, run.priority, run.timeout, run.tenant_id) for run in due)
    with connection.cursor() as cursor:
        cursor.execute(render(_STRANDED), {"cutoff": cutoff, "limit": 10_000})
        stranded = [row[0] for row in cursor.fetchall()]
    if stranded:
        settled = dependents_settle(waiting=stranded)
        recovered["waiting"] = settled["cancelled"] + settled["queued"]  # the key only when some were
    if any(recovered.values()):
        logger.warning("Recovered stalled task runs: %s", recovered)
    return recovered
