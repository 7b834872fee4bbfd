"""One delivery of a run in a worker: claim, the task in its tenant's schema, the outcome recorded.

The path of one package, top to bottom: tasks.runner.execute -> run_execute
-> a claim (the dequeue's, carried by the package, see tasks.engine.delivery;
else tasks.engine.claim) -> the task function inside tenant_context, under
the watchdog -> tasks.engine.outcome (success handed to the broker's
acknowledgement, or failure / retry / cancel recorded here).
"""

from __future__ import annotations

import logging
import signal
import traceback as traceback_module
from contextlib import nullcontext

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django_q.exceptions import TimeoutException
from django_tenants.utils import tenant_context

from tasks import registry
from tasks.engine.claim import claim_slow, fast_claim
from tasks.engine.context import TaskCancelled, TaskContext
from tasks.engine.delivery import Delivery, take_dequeue_claim
from tasks.engine.outcome import close_attempt, finish, record_failure, record_success, success_values
from tasks.engine.watchdog import watchdog
from tasks.models import Status, TaskAttempt, TaskRun

logger = logging.getLogger("tasks")


class TenantMissing(RuntimeError):
    """The run's tenant no longer exists: the run fails, never falls back to public."""


def tenant_for_schema(schema_name: str):
    from tenants.models import Tenant

    return Tenant.objects.filter(schema_name=schema_name).first()


def run_execute(*, run_id) -> str:
    """Run one delivery of a task run in this process; what the cluster worker calls. Returns the outcome."""
    connection.set_schema_to_public()
    dequeue_claim = Delivery.take_claim(run_id)
    if dequeue_claim is not None:
        run, attempt, verdict = take_dequeue_claim(dequeue_claim)
    elif (claimed := fast_claim(run_id)) is not None:
        run, attempt, verdict = *claimed, "claimed"
    else:
        run, attempt, verdict = claim_slow(run_id)
    if attempt is None:
        logger.info("task run %s not run: %s", run_id, verdict)
        return verdict

    tenant = None
    if run.schema_name != "public":
        tenant = tenant_for_schema(run.schema_name)
        if tenant is None:
            message = f"Tenant schema {run.schema_name!r} no longer exists: the task was not run (never in public)."
            attempt.started_at = attempt.started_at or timezone.now()
            with transaction.atomic():
                close_attempt(attempt, TaskAttempt.Outcome.FAILED, message)
                finish(run, status=Status.FAILED, now=timezone.now(), error=message)
            raise TenantMissing(message)

    spec = None
    try:
        spec = registry.get_spec(run.name)
    except ValidationError:
        pass
    # A run the dequeue claimed reads as queued until here: its attempt, and the run, start now. The start
    # is written once: by the watchdog thread if the task lasts (claim.run_mark_started), by its first
    # progress report, or else by its outcome, whichever comes first (the others keep it).
    not_marked = run.status == Status.CLAIMED
    attempt.started_at = attempt.started_at or timezone.now()
    context = TaskContext(run=run, attempt=attempt.number, tenant=tenant, started_at=attempt.started_at)
    timed_out_by_watchdog = False
    try:
        if spec is None:
            raise LookupError(f"Task {run.name!r} is not registered in this worker.")
        watchdog.arm(run=run, attempt=attempt, seconds=run.timeout, mark_started=not_marked)
        try:
            with tenant_context(tenant) if tenant is not None else nullcontext():
                value = spec.func(context, **run.arguments)
        finally:
            # The task is over: a SIGALRM or the watchdog now would hit our bookkeeping, not the task.
            signal.alarm(0)
            timed_out_by_watchdog = watchdog.disarm()
    except TaskCancelled:
        if timed_out_by_watchdog:
            return "timed out"
        with transaction.atomic():
            close_attempt(attempt, TaskAttempt.Outcome.CANCELLED, "Cancelled while running.")
            TaskRun.objects.filter(pk=run.pk, started_at__isnull=True).update(started_at=attempt.started_at)
            finish(run, status=Status.CANCELLED, now=timezone.now(), error="Cancelled while running.")
        return "cancelled"
    except TimeoutException as error:
        return record_failure(run, attempt, TaskAttempt.Outcome.TIMED_OUT,
                              f"Timed out after {run.timeout} s ({error}).", traceback_module.format_exc())
    except Exception as error:  # the task's own failure: recorded, retried per its policy
        return record_failure(run, attempt, TaskAttempt.Outcome.FAILED, f"{type(error).__name__}: {error}",
                              traceback_module.format_exc())
    finally:
        connection.set_schema_to_public()

    if timed_out_by_watchdog:
        return "timed out"  # recorded by the watchdog; a late success does not undo it
    success = success_values(run, attempt, value)
    if Delivery.acknowledges(run.pk):
        # The run of the package this worker executes: its success is recorded when the broker acknowledges
        # the package, in the cluster's monitor (ORM: in the statement deleting it; see tasks.engine.delivery).
        Delivery.acknowledge_with(success)
    else:
        record_success(**success)  # run in-process (a test, a command, a run executed inside another task)
    return "succeeded"
