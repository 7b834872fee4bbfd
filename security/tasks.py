"""The audit log's retention: a registered task, fired daily by a django-q2 schedule (migration 0001)."""

from security import audit
from tasks import actions
from tasks.registry import OPERATOR, register_task

PRUNE_TASK = "security.audit_prune"


@register_task(PRUNE_TASK, scope=OPERATOR, timeout=300,
               schema={"type": "object", "additionalProperties": False,
                       "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 36500}}})
def audit_prune(ctx, days: int | None = None):
    """Delete audit entries and login history older than AUDIT_RETENTION_DAYS (or `days`) in every schema."""
    return audit.audit_prune(days=days, progress=ctx.progress)


def audit_prune_scheduled():
    """Called by django-q2's scheduler: submits the prune as a task run (visible with its result in the admin)."""
    run = actions.task_submit(name=PRUNE_TASK, submitted_by="schedule security: audit prune")
    return str(run.pk)
