"""Around a rollout: the dry-run plan (stages, phases, types), the canary's size, undo per schema, `--steps N` back.

The admin's rollout form shows `rollout_plan`; the rollout itself, from the
admin, the API (the `schemas.rollout` task) or `manage.py rollout`, is one
service, `schemas.data_migrations.rollout_phased` (schema phase, then each data
migration's phase, a canary stage then the rest). Every schema change still
goes through `services.rollout_run` (its lock, its ledger, its resumable
Rollout row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from core.errors import DomainError
from schemas import selectors
from schemas.graph import Key, load_graph
from schemas.models import Rollout
from schemas.services import RolloutResult, rollout_run

MAX_SCHEMAS_NAMED = 10_000  # schemas named in one form or task; "every tenant" has no such list
MAX_CANARY = 10_000


@dataclass
class PlanStep:
    app: str
    name: str
    backwards: bool
    atomic: bool
    type: str

    @property
    def label(self) -> str:
        return f"{'Unapply' if self.backwards else 'Apply'} {self.app}.{self.name}"


@dataclass
class SchemaPlan:
    schema: str
    stage: str  # "canary" or "rest"
    steps: list[PlanStep]


@dataclass
class StagedPlan:
    schemas: list[SchemaPlan]
    unchanged: int
    canary: int  # schemas in the canary stage (0: none, all in one stage)
    non_atomic: list[str] = field(default_factory=list)  # app.name of each non-atomic migration of the plan

    @property
    def todo(self) -> int:
        return len(self.schemas)

    @property
    def phases(self) -> list[str]:
        """The phases the rollout goes through: "schema phase", then "data phase app.name (type)" for each pending
        data or hybrid migration, in order (a rollback is one pass: "rollback")."""
        if any(step.backwards for plan in self.schemas for step in plan.steps):
            return ["rollback"]
        names: dict[str, None] = {}
        schema_first = False
        for plan in self.schemas:
            for step in plan.steps:
                if step.type in ("data", "hybrid"):
                    names.setdefault(f"data phase {step.app}.{step.name} ({step.type})")
                elif not names:
                    schema_first = True
        return (["schema phase"] if schema_first or not names else []) + list(names)

    @property
    def visits(self) -> int:
        """Schema-phase visits the rollout will make (its progress' denominator): per schema, one per run of
        schema migrations and one per data or hybrid migration of its plan; a rollback visits each schema once."""
        total = 0
        for plan in self.schemas:
            if any(step.backwards for step in plan.steps):
                total += 1
                continue
            previous = ""
            for step in plan.steps:
                kind = "data" if step.type in ("data", "hybrid") else "schema"
                if kind == "data" or previous != "schema":
                    total += 1
                previous = kind
        return total

    def as_dict(self) -> dict:
        return {
            "todo": self.todo, "unchanged": self.unchanged, "canary": self.canary, "non_atomic": self.non_atomic,
            "phases": self.phases,
            "schemas": [{"schema": s.schema, "stage": s.stage,
                         "steps": [{"migration": f"{p.app}.{p.name}", "backwards": p.backwards,
                                    "atomic": p.atomic, "type": p.type} for p in s.steps]}
                        for s in self.schemas],
        }


def canary_size(*, todo: int, canary: int | None = None, percent: int | None = None) -> int:
    """Schemas of the canary stage: a count, or a percentage of those to change (rounded up); 0 means none."""
    if canary is not None and percent is not None:
        raise ValidationError({"canary_percent": "Give a canary count or a percentage, not both."})
    if canary is not None:
        if not 1 <= canary <= MAX_CANARY:
            raise ValidationError({"canary": f"A canary of 1 to {MAX_CANARY:,} schemas."})
        return min(canary, todo)
    if percent is not None:
        if not 1 <= percent <= 100:
            raise ValidationError({"canary_percent": "A percentage from 1 to 100."})
        return min(todo, max(1, math.ceil(todo * percent / 100))) if todo else 0
    return 0


def _check_names(schemas: list[str] | None) -> None:
    if schemas and len(schemas) > MAX_SCHEMAS_NAMED:
        raise ValidationError({"schemas": f"At most {MAX_SCHEMAS_NAMED:,} schemas by name; leave empty for all."})


def rollout_plan(*, schemas: list[str] | None = None, targets: list[tuple[str, str | None]] | None = None,
                 canary: int | None = None, percent: int | None = None, resume: bool = False) -> StagedPlan:
    """What a staged rollout would do, changing nothing: each schema's migrations in order, with its stage,
    each migration's type and whether it is atomic (a non-atomic one commits migration by migration)."""
    _check_names(schemas)
    preview = rollout_run(schemas=schemas, targets=targets, resume=resume, dry_run=True)
    graph = load_graph()
    nodes = graph.loader.graph.nodes
    todo = [name for name, plan in preview.plans.items() if plan]
    size = canary_size(todo=len(todo), canary=canary, percent=percent)
    non_atomic: dict[str, None] = {}
    plans = []
    for index, name in enumerate(todo):
        steps = []
        for (app, migration), backwards in preview.plans[name]:
            atomic = getattr(nodes.get((app, migration)), "atomic", True)
            if not atomic:
                non_atomic.setdefault(f"{app}.{migration}")
            steps.append(PlanStep(app=app, name=migration, backwards=backwards, atomic=atomic,
                                  type=graph.type_of((app, migration))))
        plans.append(SchemaPlan(schema=name, stage="canary" if index < size else "rest", steps=steps))
    return StagedPlan(schemas=plans, unchanged=preview.skipped, canary=size, non_atomic=list(non_atomic))


def undo_targets(*, rollout: Rollout, schema: str) -> list[tuple[str, str | None]]:
    """Targets that reverse what `rollout` applied to `schema`: per app, the parent of the first one it applied."""
    outcome = rollout.results.get(schema)
    if outcome is None:
        raise ValidationError({"schema": f"Rollout #{rollout.pk} did not touch {schema}."})
    applied = [label for label in outcome.get("applied") or [] if not label.startswith("-")]
    if outcome.get("status") != "ok" or not applied:
        raise ValidationError({"schema": f"Rollout #{rollout.pk} applied nothing to {schema} that could be undone."})
    graph = load_graph()
    first_by_app: dict[str, Key] = {}
    for label in applied:
        app, name = label.split(".", 1)
        first_by_app.setdefault(app, (app, name))
    targets = []
    for app, key in sorted(first_by_app.items()):
        node = graph.loader.graph.node_map.get(key)
        if node is None:
            raise ValidationError({"schema": f"{app}.{key[1]} is no longer on disk; it cannot be reversed."})
        parents = sorted(p.key for p in node.parents if p.key[0] == app)
        targets.append((app, parents[-1][1] if parents else None))
    return targets


def rollout_undo_schema(*, rollout_id: int, schema: str, by: str | None = None) -> RolloutResult:
    """Reverse, in one schema, what one rollout applied there (a rollback rollout of its own, in the ledger)."""
    rollout = Rollout.objects.filter(pk=rollout_id).first()
    if rollout is None:
        raise DomainError(f"No rollout #{rollout_id}.", code="not_found", status=404)
    if schema not in selectors.tenant_schema_names():
        raise ValidationError({"schema": f"Not a tenant schema: {schema}."})
    targets = undo_targets(rollout=rollout, schema=schema)
    return rollout_run(schemas=[schema], targets=targets, by=by)


MAX_STEPS = 1000


def steps_back_targets(*, steps: int, apps: list[str] | None = None,
                       schemas: list[str] | None = None) -> dict[tuple, list[str]]:
    """{targets: [schema, ...]} that unapply each schema's last `steps` applied migrations (of `apps`, else of
    every tenant app), as the seed's `migrate_down(steps=N)`. Refused, before anything runs, when a schema has
    fewer than `steps` applied, or for an app that is not a tenant app."""
    from schemas.graph import apps_for

    if not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValidationError({"steps": f"Steps back: a whole number from 1 to {MAX_STEPS}."})
    _check_names(schemas)
    tenant_apps = set(apps_for("__tenant__"))
    unknown = sorted(set(apps or []) - tenant_apps)
    if unknown:
        raise ValidationError({"apps": f"Not a tenant app: {', '.join(unknown)}."})
    scope = set(apps or tenant_apps)
    known = set(selectors.tenant_schema_names())
    names = sorted(set(schemas)) if schemas else sorted(known)
    missing = sorted(set(names) - known)
    if missing:
        raise ValidationError({"schemas": f"Not a tenant schema: {', '.join(missing)}."})
    graph = load_graph()
    groups: dict[tuple, list[str]] = {}
    short = []
    for schema, applied in selectors.applied_in_order_by_schema(names).items():
        mine = [key for key in applied if key[0] in scope and key in graph.nodes]
        if len(mine) < steps:
            short.append(f"{schema} ({len(mine)})")
            continue
        undo = mine[-steps:]
        first_by_app: dict[str, Key] = {}
        for key in undo:
            first_by_app.setdefault(key[0], key)
        targets = []
        for app, key in sorted(first_by_app.items()):
            parents = sorted(p.key for p in graph.loader.graph.node_map[key].parents if p.key[0] == app)
            targets.append((app, parents[-1][1] if parents else None))
        groups.setdefault(tuple(targets), []).append(schema)
    if short:
        shown = ", ".join(short[:10]) + (f" and {len(short) - 10} more" if len(short) > 10 else "")
        raise ValidationError({"steps": f"{steps} step(s) back is more than is applied in {shown}."})
    return groups


def rollout_steps_back(*, steps: int, apps: list[str] | None = None, schemas: list[str] | None = None,
                       dry_run: bool = False, workers: int | None = None, by: str | None = None,
                       progress=None) -> list[RolloutResult]:
    """Roll each schema back by its last `steps` migrations: one rollback rollout per distinct set of targets."""
    groups = steps_back_targets(steps=steps, apps=apps, schemas=schemas)
    return [rollout_run(schemas=names, targets=list(targets), dry_run=dry_run, workers=workers, by=by,
                        progress=progress) for targets, names in groups.items()]
