"""A run's life after its submission: cancelled for good, or retried as a new run."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tasks.actions.submit import admit_runs, dispatch_on_commit, within_run_limit
from tasks.actions.validate import build_run, tenant_limits
from tasks.engine.outcome import finish
from tasks.models import LEASED, TERMINAL, Status, TaskRun


def task_cancel(*, run: TaskRun, cancelled_by: str = "") -> TaskRun:
    """Cancel for good (stored in the database, so a cluster restart does not undo it).

    A queued, delayed, retrying or waiting run is cancelled at once and never
    starts; a running one is flagged and stops at its next progress report.
    """
    now = timezone.now()
    with transaction.atomic():
        run = TaskRun.objects.select_for_update().get(pk=run.pk)
        if run.status in TERMINAL:
            raise ValidationError(f"This task run is already {run.get_status_display().lower()}.",
                                  code="already_finished")
        run.cancel_requested = True
        note = f"Cancelled by {cancelled_by}." if cancelled_by else "Cancelled."
        if run.status in LEASED:
            # A claimed run's package may already be with a worker that starts it without asking (see
            # Delivery.fresh_claim_seconds): like a running one it stops at its first progress report.
            run.progress_message = f"Cancel requested{' by ' + cancelled_by if cancelled_by else ''}."[:200]
            run.save(update_fields=["cancel_requested", "progress_message", "updated_at"])
        else:
            run.save(update_fields=["cancel_requested", "updated_at"])
            finish(run, status=Status.CANCELLED, now=now, error=note)
    return run


def task_retry(*, run: TaskRun, submitted_by: str = "", by_operator: bool = False) -> TaskRun:
    """Submit a failed or cancelled run again, as a new run that points back at it.

    By its tenant (its admin), within its plan: at most the plan's highest priority.
    """
    if run.status not in (Status.FAILED, Status.CANCELLED):
        raise ValidationError("Only a failed or cancelled run can be retried.", code="not_retryable")
    limits = tenant_limits(run.tenant, by_operator)
    priority = run.priority if limits is None else min(run.priority, limits.max_priority)
    if run.schema_name != "public" and run.tenant is None:
        raise ValidationError("The tenant of this run no longer exists.", code="tenant_missing")
    new = build_run(
        name=run.name, arguments=run.arguments, tenant=run.tenant, priority=priority, limits=limits,
        max_retries=run.max_retries, timeout=run.timeout, backoff_base=run.backoff_base,
        backoff_cap=run.backoff_cap, run_if_dependency_fails=run.run_if_dependency_fails,
        submitted_by=submitted_by, schedule=run.schedule, eta=None, retry_of=run,
    )
    admit_runs(tenant=run.tenant, count=1, limits=limits)
    with within_run_limit(run.tenant), transaction.atomic():
        new.status = Status.QUEUED
        new.save(force_insert=True)
        dispatch_on_commit([new])
    return new
