"""What a running task sees of the engine: its context, progress, cancellation and once-only effects."""

from __future__ import annotations

import datetime as dt
import os

from django.db import IntegrityError, transaction
from django.utils import timezone

from core.db import raw_cursor
from tasks.engine.sql import public_table
from tasks.models import TaskEffect, TaskRun


class TaskCancelled(Exception):
    """Raised inside a running task at a progress report once a cancel was requested."""


def progress_report(*, run_id, fraction: float, message: str = "", started_at: dt.datetime | None = None) -> None:
    """Store a running task's progress; raise TaskCancelled when a cancel was requested meanwhile.

    From inside the task (`started_at` given): a run the dequeue claimed is running from then on.
    """
    if not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
        raise ValueError("Progress must be a fraction between 0 and 1.")
    with raw_cursor() as cursor:
        cursor.execute(
            # The worker's pid too: a claim made by the dequeue does not know which worker takes it.
            f"UPDATE {public_table(TaskRun)} SET progress = %s, progress_message = %s, worker_pid = %s, "
            "status = CASE WHEN status = 'claimed' AND %s::timestamptz IS NOT NULL THEN 'running' ELSE status END, "
            "started_at = COALESCE(started_at, %s::timestamptz), updated_at = now() "
            "WHERE id = %s RETURNING cancel_requested",
            [float(fraction), (message or "")[:200], os.getpid(), started_at, started_at, str(run_id)],
        )
        row = cursor.fetchone()
    if row and row[0]:
        raise TaskCancelled(f"Task run {run_id} was cancelled.")


def effect_once(*, key: str, run: TaskRun | None = None, detail: dict | None = None) -> bool:
    """Record an idempotency key; True the first time, False when the effect already happened.

    Call it inside the same transaction as the side effect it guards.
    """
    try:
        with transaction.atomic():
            TaskEffect.objects.create(key=key, run=run, detail=detail or {})
    except IntegrityError:
        return False
    return True


class TaskContext:
    """What a task function receives first: its run, its tenant, progress and cancellation."""

    def __init__(self, *, run: TaskRun, attempt: int, tenant=None, started_at: dt.datetime | None = None):
        self.run = run
        self.run_id = run.pk
        self.attempt = attempt
        self.tenant = tenant
        self.idempotency_key = run.idempotency_key
        self.started_at = started_at or timezone.now()

    def progress(self, fraction: float, message: str = "") -> None:
        progress_report(run_id=self.run_id, fraction=fraction, message=message, started_at=self.started_at)

    def check_cancelled(self) -> None:
        if TaskRun.objects.filter(pk=self.run_id, cancel_requested=True).exists():
            raise TaskCancelled(f"Task run {self.run_id} was cancelled.")
