"""The rollout as a background task, so the operator admin can start it and watch its progress."""

from tasks.registry import OPERATOR, register_task

ROLLOUT_ARGUMENTS = {
    "type": "object",
    "properties": {
        "targets": {"type": "array", "items": {"type": "string", "pattern": r"^\w+[.:]\w+$"}, "maxItems": 100},
        "schemas": {"type": "array", "items": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*$"},
                    "maxItems": 10000},
        "resume": {"type": "boolean"},
        "canary": {"type": "integer", "minimum": 1, "maximum": 10000},
        "canary_percent": {"type": "integer", "minimum": 1, "maximum": 100},
        "stop_after_canary": {"type": "boolean"},
        "parallel": {"type": "boolean"},
        "operator": {"type": "string", "maxLength": 150},
    },
    "additionalProperties": False,
}

# An hour: a rollout over thousands of schemas with data migrations outlasts the cluster's default 300 s. Safe on
# our brokers, which lease each run for its own timeout (tasks.conf.RUN_LEASING_BROKERS); on django-q2's own the
# task layer cuts it to the cluster's retry minus the lease grace. A rollout cut by its timeout keeps every batch
# it finished (a Rollout row each) and goes on with resume.
ROLLOUT_TIMEOUT = 3600


@register_task("schemas.rollout", schema=ROLLOUT_ARGUMENTS, scope=OPERATOR, timeout=ROLLOUT_TIMEOUT,
               description="Migrate every tenant schema (or roll back to targets), as `manage.py rollout`: in phases "
                           "(schema migrations, then each data migration in batches), a canary first (a count or a "
                           "percentage) then the rest, halting at the first failure.")
def rollout(ctx, *, targets=None, schemas=None, resume=False, canary=None, canary_percent=None,
            stop_after_canary=False, parallel=False, operator=""):
    """Migrate tenant schemas in the background through `rollout_phased`; progress is the share of the plan's
    schema visits done (a schema visited in the schema phase and again in a data phase counts twice), its message
    the phase and the schema."""
    from core.errors import DomainError
    from schemas.data_migrations import phase_label, rollout_phased
    from schemas.rollouts import rollout_plan
    from schemas.services import parse_target

    parsed = [parse_target(t) for t in targets or []] or None
    plan = rollout_plan(schemas=schemas, targets=parsed, resume=resume)
    total = max(1, plan.visits)
    seen, last = [0], [""]

    def progress(result):
        seen[0] += 1
        last[0] = f"{phase_label(result.get('phase'))}: {result['schema']} {result['status']}"
        ctx.progress(min(1.0, seen[0] / total), last[0])

    phased = rollout_phased(schemas=schemas, targets=parsed, resume=resume, canary=canary, percent=canary_percent,
                            then_rest=not stop_after_canary, halt_on_failure=not parallel, by=operator or None,
                            progress=progress)
    summary = {**phased.as_dict(), "up_to_date": plan.unchanged}
    if phased.failed:
        failed = summary["failed"]
        raise DomainError(f"Rollout #{summary['rollout']}: {len(failed)} schema(s) failed: {', '.join(failed)}"
                          f"{'; ' + phased.halted if phased.halted else ''}.", detail=summary)
    if seen[0]:
        ctx.progress(1.0, last[0])
    return summary
