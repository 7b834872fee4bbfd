"""Long work as tasks: the MCP tools that train a points model on the task cluster, and a run's state by id.

`training_submit` submits `league.train_points_model` for the caller's tenant at the caller's priority
(held to the plan's highest, as every tenant submission is); the MCP tool then polls the run and streams
its progress (TaskRun.progress, progress_message) as MCP progress notifications while the client waits.
A run is the caller's tenant's: `run_state` and `run_cancel` of another tenant's run id are `not_found`.

The transport is stateless, so an MCP `notifications/cancelled` reaches the server on a request of its
own, maybe on another process: the run to cancel is found by what its submission recorded in
`submitted_by` (the key's prefix and the client's request id), so only the key that submitted it can
cancel it that way. A client that disconnects does not cancel: the run goes on and `training_run_state`
answers it later.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django_tenants.utils import schema_context

from core.errors import DomainError
from nba_mcp.tenancy import Principal
from tasks import actions, selectors
from tasks.models import TERMINAL, Priority, TaskRun, public_status

TASK_NAME = "league.train_points_model"


def submitter(principal: Principal, request_id) -> str:
    return f"mcp key {principal.key.prefix} request {str(request_id)[:64]}"[:150]


def _invalid(error: ValidationError) -> DomainError:
    messages = error.message_dict if hasattr(error, "error_dict") else {"detail": error.messages}
    first = next(iter(messages.values()))[0]
    return DomainError(first, code=getattr(error, "code", None) or "invalid", detail={"errors": messages})


def run_view(run: TaskRun) -> dict:
    return {
        "run_id": str(run.pk), "task": run.name, "status": public_status(run.status),
        "finished": run.status in TERMINAL, "priority": Priority(run.priority).name.lower(),
        "progress": float(run.progress), "progress_message": run.progress_message,
        "attempts": run.attempts, "result": run.result if isinstance(run.result, dict) else None,
        "error": run.error[:500], "submitted_at": run.created_at.isoformat() if run.created_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
    }


def training_submit(*, principal: Principal, name: str, window_games: int = 10, priority: str | None = None,
                    request_id=None) -> dict:
    """Submit the training of points model `name` for the caller's tenant; the run's state."""
    with schema_context("public"):
        try:
            run = actions.task_submit(name=TASK_NAME, arguments={"name": name, "window_games": window_games},
                                      tenant=principal.tenant, priority=priority,
                                      submitted_by=submitter(principal, request_id))
        except ValidationError as error:
            raise _invalid(error) from None
        return run_view(run)


def _own_run(principal: Principal, run_id: str) -> TaskRun:
    try:
        return selectors.task_run_get(tenant=principal.tenant, run_id=run_id)
    except (TaskRun.DoesNotExist, ValidationError, ValueError):
        raise DomainError("No task run of yours has this id.", code="not_found", detail={"run_id": run_id},
                          status=404) from None


def run_state(*, principal: Principal, run_id: str) -> dict:
    """One of the caller's tenant's runs; `not_found` for another tenant's (or no) run."""
    with schema_context("public"):
        return run_view(_own_run(principal, run_id))


def run_cancel(*, principal: Principal, run_id: str) -> dict:
    """Cancel one of the caller's tenant's runs (a running one stops at its next progress report)."""
    with schema_context("public"):
        run = _own_run(principal, run_id)
        try:
            actions.task_cancel(run=run, cancelled_by=f"MCP key {principal.key.prefix}")
        except ValidationError as error:
            raise _invalid(error) from None
        return run_view(TaskRun.objects.get(pk=run.pk))


def cancel_for_request(*, principal: Principal, request_id) -> str | None:
    """An MCP cancellation of request `request_id`: cancel the unfinished run that request submitted, if any."""
    with schema_context("public"):
        run = (TaskRun.objects.filter(tenant=principal.tenant, submitted_by=submitter(principal, request_id))
               .exclude(status__in=TERMINAL).order_by("-created_at").first())
        if run is None:
            return None
        try:
            actions.task_cancel(run=run, cancelled_by=f"MCP cancellation (key {principal.key.prefix})")
        except ValidationError:
            return None  # it finished meanwhile
        return str(run.pk)
