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


@register_task("schemas.rollout", schema=ROLLOUT_ARGUMENTS, scope=OPERATOR, timeout=300,
               description="Migrate every tenant schema (or roll back to targets), as `manage.py rollout`: "
                           "a canary first (a count or a percentage) then the rest, halting at the first failure.")
def rollout(ctx, *, targets=None, schemas=None, resume=False, canary=None, canary_percent=None,
            stop_after_canary=False, parallel=False, operator=""):
    """Migrate tenant schemas in the background; progress is the share of schemas done."""
    from core.errors import DomainError
    from schemas.rollouts import rollout_plan, rollout_staged
    from schemas.services import parse_target

    parsed = [parse_target(t) for t in targets or []] or None
    plan = rollout_plan(schemas=schemas, targets=parsed, resume=resume)
    total = max(1, plan.todo)
    seen = []

    def progress(result):
        seen.append(result)
        ctx.progress(min(1.0, len(seen) / total), f"{result['schema']}: {result['status']}")

    staged = rollout_staged(schemas=schemas, targets=parsed, resume=resume, canary=canary, percent=canary_percent,
                            then_rest=not stop_after_canary, halt_on_failure=not parallel, by=operator or None,
                            progress=progress)
    failed = sorted({s for _, stage in staged.stages for s in stage.failed})
    migrated = sum(1 for _, stage in staged.stages for r in stage.results.values() if r["status"] == "ok")
    summary = {"rollout": staged.rollout.pk if staged.rollout else None, "migrated": migrated, "failed": failed,
               "up_to_date": plan.unchanged, "stages": staged.as_dict()["stages"], "halted": staged.halted}
    if failed:
        raise DomainError(f"Rollout #{summary['rollout']}: {len(failed)} schema(s) failed: {', '.join(failed)}"
                          f"{'; ' + staged.halted if staged.halted else ''}.", detail=summary)
    return summary
