"""Migration types that mean something: a rollout in phases, schema migrations first, then each data migration.

A data (or hybrid) migration never runs in the transaction of a schema change:
`rollout_phased` migrates every schema up to just before the first pending data
migration (the schema phase, one transaction per schema), then runs that data
migration alone in each schema that lacks it (the data phase, one transaction
per schema, so no ALTER TABLE lock is held while rows are rewritten), and goes
on until nothing is pending. A hybrid migration is split (schemas/hybrid.py):
its schema part runs in the schema phase, its data part in the data phase.

The data phase runs in explicit batches of `batch_size` schemas, each batch a
Rollout row of its own (its `phase` says which data migration, batch i of n):
the rows say which schemas are done, failed or pending. After a kill, `rollout`
(or `rollout --resume`) goes on from django_migrations: a schema that is done
is never run again. A schema already past a phase's targets sits the phase out:
a phase never rolls anything back.

Explicit targets (`rollout app.0005`) go through the same phases up to them; a
rollback (a target behind a schema) is one plain pass. A canary (`canary=N`)
runs the phases on the first N schemas with something to do, one schema at a
time, halting at the first failure; `resume=True` finishes the last unfinished
row, then the phases over what the canary left.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db.models.signals import pre_save

from core.errors import DomainError
from schemas import selectors
from schemas.executor import SchemaMigrator
from schemas.graph import DATA, HYBRID, Graph, Key, load_graph
from schemas.models import Rollout
from schemas.services import RolloutResult, rollout_run

DEFAULT_BATCH = 100
MAX_BATCH = 10_000

_phase: contextvars.ContextVar[dict | None] = contextvars.ContextVar("rollout_phase", default=None)


def _stamp_phase(sender, instance, **kwargs):
    """A Rollout row saved while a phase runs says which phase it is, from its first save (a kill loses nothing)."""
    stamp = _phase.get()
    if stamp is not None and not instance.phase:
        instance.phase = stamp


pre_save.connect(_stamp_phase, sender=Rollout, dispatch_uid="schemas.data_migrations.stamp_phase")


@dataclass
class Phase:
    kind: str  # "schema", "data" or "rollback"
    migration: str  # the data migration of a data phase, "" otherwise
    result: RolloutResult
    batch: int = 1
    batches: int = 1
    type: str = ""  # the data migration's type: data or hybrid

    @property
    def done(self) -> int:
        return sum(1 for r in self.result.results.values() if r["status"] == "ok")


@dataclass
class PhasedResult:
    phases: list[Phase] = field(default_factory=list)
    canary_left: int = 0  # schemas with something left after a canary: `resume` does them

    @property
    def failed(self) -> dict[str, dict]:
        failed: dict[str, dict] = {}
        for phase in self.phases:
            failed.update(phase.result.failed)
        return failed


def _closure(graph: Graph, goal: list[Key] | None) -> set[Key] | None:
    """Every migration the goal's targets need (None: every migration)."""
    if goal is None:
        return None
    plan = graph.loader.graph.forwards_plan
    return {key for target in goal for key in plan(target)}


def _pending_data(graph: Graph, applied: dict[str, set[Key]], scope: set[Key] | None) -> list[Key]:
    """Data and hybrid migrations (within `scope`) pending in at least one schema, in dependency order."""
    pending: set[Key] = set()
    for keys in applied.values():
        pending.update(k for k in graph.pending(keys) if graph.type_of(k) in (DATA, HYBRID)
                       and (scope is None or k in scope))
    return [key for key in graph.ordered if key in pending]


def schema_phase_targets(graph: Graph, blocked: set[Key], scope: set[Key] | None = None) -> list[Key]:
    """Per app, its latest migration (within `scope`) that needs none of `blocked` (the pending data migrations)."""
    plan = graph.loader.graph.forwards_plan
    targets = []
    for app in sorted({app for app, _ in graph.ordered}):
        chain = [key for key in graph.ordered if key[0] == app and (scope is None or key in scope)]
        allowed = [key for key in chain if not blocked.intersection(plan(key))]
        if allowed:
            targets.append(allowed[-1])
    return targets


def _plans(graph: Graph, targets, names: list[str], applied: dict[str, set[Key]]) -> dict[str, list]:
    migrator = SchemaMigrator(targets=targets, graph=graph)
    return {name: migrator.plan(applied[name]) for name in names}


def _forwards_schemas(graph: Graph, targets, names: list[str], applied: dict[str, set[Key]]) -> list[str]:
    """The schemas these targets move forwards only (a schema ahead of them sits the phase out)."""
    return [name for name, plan in _plans(graph, targets, names, applied).items()
            if plan and not any(backwards for _, backwards in plan)]


def _check(batch_size: int, canary: int | None) -> None:
    if not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH:
        raise ValidationError({"batch_size": f"A batch of 1 to {MAX_BATCH:,} schemas."})
    if canary is not None and not 1 <= canary <= MAX_BATCH:
        raise ValidationError({"canary": f"A canary of 1 to {MAX_BATCH:,} schemas."})


def rollout_phased(*, schemas: list[str] | None = None, targets: list[tuple[str, str | None]] | None = None,
                   canary: int | None = None, resume: bool = False, batch_size: int = DEFAULT_BATCH,
                   workers: int | None = None, by: str | None = None, progress=None,
                   phase_done=None) -> PhasedResult:
    """Tenant schemas (every one, or `schemas`) to `targets` (default: every app's latest), schema migrations
    before data migrations, the data migrations in batches of `batch_size` schemas.

    `progress(result)` is called per schema as in rollout_run; `phase_done(phase)` after each phase (each batch
    of a data phase). Stops after the first phase or batch with a failure: what is left is pending, and a rerun
    (or `resume=True`) picks it up.
    """
    _check(batch_size, canary)
    outcome = PhasedResult()
    if resume:
        if schemas or targets or canary:
            raise ValidationError({"resume": "A resume reuses the last rollout's targets and schemas; give neither."})
        previous = selectors.rollout_latest_resumable()
        if previous is None:
            raise DomainError("Nothing to resume: the last rollout finished every schema.", code="nothing_to_resume")
        stamp = dict(previous.phase or {})
        finished = rollout_run(resume=True, workers=workers, by=by, progress=progress)
        outcome.phases.append(Phase(stamp.get("kind") or "schema", stamp.get("migration", ""), finished,
                                    stamp.get("batch", 1), stamp.get("batches", 1), stamp.get("type", "")))
        if phase_done is not None:
            phase_done(outcome.phases[-1])
        if finished.failed or not stamp:
            return outcome  # a plain rollout's row: resumed as it was
        schemas = stamp.get("scope")
        targets = [tuple(t) for t in stamp["goal"]] if stamp.get("goal") else None
    names = sorted(set(schemas)) if schemas else selectors.tenant_schema_names()
    graph = load_graph()
    goal = [tuple(t) for t in targets] if targets else None
    applied = selectors.applied_migrations_by_schema(names)
    if goal is not None and (any(name is None for _, name in goal) or any(
            backwards for plan in _plans(graph, goal, names, applied).values() for _, backwards in plan)):
        # A rollback: reversing has no phases; one plain pass, as `rollout` always did.
        result = rollout_run(schemas=schemas, targets=goal, workers=workers, canary=canary, by=by,
                             progress=progress)
        outcome.phases.append(Phase("rollback", "", result))
        if phase_done is not None:
            phase_done(outcome.phases[-1])
        return outcome
    scope_schemas = list(schemas) if schemas else None
    if canary is not None:
        todo = [name for name, plan in _plans(graph, goal, names, applied).items() if plan]
        names = todo[:canary]
        outcome.canary_left = len(todo) - len(names)
    stamp = {"goal": [list(t) for t in goal] if goal else [], "scope": scope_schemas, "canary": canary}
    _run_phases(outcome, names=names, goal=goal, canary=canary is not None, batch_size=batch_size,
                workers=workers, by=by, progress=progress, phase_done=phase_done, stamp=stamp)
    if outcome.canary_left and not outcome.failed and outcome.phases:
        # The canary's last row stays open: `rollout --resume` finds it and does the rest.
        last = outcome.phases[-1].result.rollout
        if last is not None:
            Rollout.objects.filter(pk=last.pk).update(status=Rollout.Status.PARTIAL)
    return outcome


def _run_phases(outcome: PhasedResult, *, names, goal, canary, batch_size, workers, by, progress, phase_done,
                stamp) -> None:
    graph = load_graph()
    scope = _closure(graph, goal)
    applied = selectors.applied_migrations_by_schema(names)
    limit = 2 * len(_pending_data(graph, applied, scope)) + 2

    def run(kind, migration, schemas, targets, batch=1, batches=1, type_=""):
        token = _phase.set({**stamp, "kind": kind, "migration": migration, "type": type_, "batch": batch,
                            "batches": batches})
        try:
            result = rollout_run(schemas=schemas, targets=targets, workers=workers, by=by, progress=progress,
                                 canary=len(schemas) if canary and schemas else None)
        finally:
            _phase.reset(token)
        phase = Phase(kind, migration, result, batch, batches, type_)
        outcome.phases.append(phase)
        if phase_done is not None:
            phase_done(phase)
        return phase

    for _ in range(limit):
        graph = load_graph()
        applied = selectors.applied_migrations_by_schema(names)
        pending_data = _pending_data(graph, applied, scope)
        if pending_data:
            targets = schema_phase_targets(graph, set(pending_data), scope)
        else:
            targets = list(goal) if goal else None
        chosen = _forwards_schemas(graph, targets, names, applied) if targets or not pending_data else []
        if not chosen and not pending_data and outcome.phases:
            return  # the phases did it all: no empty rollout row at the end
        if chosen or not pending_data:
            if not names:
                return
            phase = run("schema", "", chosen or names, targets)
            if phase.result.failed or not pending_data:
                return
            continue  # the applied state moved: look again before the data phase
        data = pending_data[0]
        chosen = _forwards_schemas(graph, [data], names, applied)
        label, type_ = f"{data[0]}.{data[1]}", graph.type_of(data)
        batches = [chosen[i:i + batch_size] for i in range(0, len(chosen), batch_size)]
        for number, batch in enumerate(batches, 1):
            phase = run("data", label, batch, [data], number, len(batches), type_)
            if phase.result.failed:
                return
