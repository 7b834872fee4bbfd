"""The public API of the task layer: what the rest of the product calls, one verb module each.

    from tasks import actions
    run = actions.task_submit(name="league.train_points_model", arguments={...}, tenant=tenant)

- submit.py: task_submit, task_submit_batch (a DAG), task_batch_size_validate
- lifecycle.py: task_cancel, task_retry
- schedules.py: schedule_save, schedule_delete, schedule_fire, schedule_validate, and the system
  schedules declared in code (tasks.registry.system_job) reconciled into TaskSchedule
- validate.py: what every submission is checked against, shared by the three

Inside a running task: its TaskContext (progress, cancellation) and effect_once, from tasks.engine.context.
How a run is then claimed, delivered, executed and its outcome recorded is the engine's (tasks.engine).
As Zulip's zerver/actions/: callers may import the verb module or this package; both are the same functions.
"""

from tasks.actions.lifecycle import task_cancel, task_retry
from tasks.actions.schedules import (
    schedule_delete,
    schedule_fire,
    schedule_save,
    schedule_validate,
    system_schedules_reconcile,
)
from tasks.actions.submit import current_tenant, task_batch_size_validate, task_submit, task_submit_batch
from tasks.engine.context import TaskCancelled, TaskContext, effect_once, progress_report
from tasks.engine.execution import TenantMissing

__all__ = [
    "TaskCancelled", "TaskContext", "TenantMissing", "current_tenant", "effect_once", "progress_report",
    "schedule_delete", "schedule_fire", "schedule_save", "schedule_validate", "system_schedules_reconcile",
    "task_batch_size_validate", "task_cancel", "task_retry", "task_submit", "task_submit_batch",
]
