"""The audit log's retention: a system job (tasks.registry.system_job), daily at 03:30 UTC, each run a TaskRun."""

from security import audit
from tasks.registry import system_job

PRUNE_TASK = "security.audit_prune"


@system_job(PRUNE_TASK, cron="30 3 * * *", schedule_name="security: audit log prune", timeout=300,
            schema={"type": "object", "additionalProperties": False,
                    "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 36500}}})
def audit_prune(ctx, days: int | None = None):
    """Delete audit entries and login history older than AUDIT_RETENTION_DAYS (or `days`) in every schema."""
    return audit.audit_prune(days=days, progress=ctx.progress)
