"""The rollout as a background task, so the operator admin can start it and watch its progress."""

from tasks.registry import OPERATOR, register_task

ROLLOUT_ARGUMENTS = {
    "type": "object",
    "properties": {
        "targets": {"type": "array", "items": {"type": "string", "pattern": r"^\w+[.:]\w+$"}},
        "schemas": {"type": "array", "items": {"type": "string", "pattern": r"^[a-z][a-z0-9_]*$"}},
        "resume": {"type": "boolean"},
        "canary": {"type": "integer", "minimum": 1},
        "operator": {"type": "string", "maxLength": 150},
    },
    "additionalProperties": False,
}


@register_task("schemas.rollout", schema=ROLLOUT_ARGUMENTS, scope=OPERATOR, timeout=300,
               description="Migrate every tenant schema (or roll back to targets), as `manage.py rollout`.")
def rollout(ctx, *, targets=None, schemas=None, resume=False, canary=None, operator=""):
    """Migrate tenant schemas in the background; progress is the share of schemas done."""
    from core.errors import DomainError
    from schemas.services import parse_target, rollout_run

    parsed = [parse_target(t) for t in targets or []] or None
    preview = rollout_run(schemas=schemas, targets=parsed, resume=resume, dry_run=True)
    total = max(1, sum(1 for plan in preview.plans.values() if plan))
    seen = []

    def progress(result):
        seen.append(result)
        ctx.progress(min(1.0, len(seen) / total), f"{result['schema']}: {result['status']}")

    result = rollout_run(schemas=schemas, targets=parsed, resume=resume, canary=canary, by=operator or None,
                         progress=progress)
    summary = {"rollout": result.rollout.pk, "migrated": len(result.results) - len(result.failed),
               "failed": sorted(result.failed), "up_to_date": result.skipped}
    if result.failed:
        raise DomainError(f"Rollout #{result.rollout.pk}: {len(result.failed)} schema(s) failed: "
                          f"{', '.join(sorted(result.failed))}.", detail=summary)
    return summary
