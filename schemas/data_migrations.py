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

This is the one rollout service: `manage.py rollout`, and the `schemas.rollout`
task the admin's "Start a rollout" and the API (`POST /api/v1/tasks/runs/`)
queue, all call `rollout_phased`. The admin's staged options map onto it: a
canary as a count or a percentage (`percent`), `then_rest` (go on with the rest
once the canary passed, in the same call) and `halt_on_failure` (the rest one
schema at a time, halting at its first failure, instead of in parallel with
failures isolated). Each phase's row is stamped with its stage (canary, rest,
or all when there is no canary).
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
from schemas.ledger import now
from schemas.models import Rollout
from schemas.rollouts import canary_size
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
    stage: str = "all"  # "canary" or "rest" when the rollout has a canary, else "all"

    @property
    def done(self) -> int:
        return sum(1 for r in self.result.results.values() if r["status"] == "ok")

    @property
    def summary(self) -> str:
        """One line, as `manage.py rollout` prints it and the task's result lists it."""
        failed = len(self.result.failed)
        if self.kind == "schema":
            return f"schema phase: {self.done} schema(s) migrated, {failed} failed"
        if self.kind == "rollback":
            return f"rollback: {self.done} schema(s) rolled back, {failed} failed"
        batch = f", batch {self.batch}/{self.batches}" if self.batches > 1 else ""
        return (f"data phase {self.migration} ({self.type}): {self.done}/{len(self.result.results)} "
                f"schema(s) done{batch}, {failed} failed")


def phase_label(phase: dict | None) -> str:
    """A phase's name from its stamp (as each progress result carries it): `schema phase`,
    `data phase app.0003_x (data), batch 2/10`, `rollback`."""
    phase = phase or {}
    kind = phase.get("kind") or "schema"
    if kind == "schema":
        return "schema phase"
    if kind == "rollback":
        return "rollback"
    batches = phase.get("batches", 1)
    batch = f", batch {phase.get('batch', 1)}/{batches}" if batches > 1 else ""
    return f"data phase {phase.get('migration', '')} ({phase.get('type') or 'data'}){batch}"


@dataclass
class PhasedResult:
    phases: list[Phase] = field(default_factory=list)
    canary_left: int = 0  # schemas with something left after a canary: `resume` does them
    halted: str = ""  # why the rollout stopped before the end, if it did

    @property
    def failed(self) -> dict[str, dict]:
        failed: dict[str, dict] = {}
        for phase in self.phases:
            failed.update(phase.result.failed)
        return failed

    @property
    def rollout(self) -> Rollout | None:
        """The last phase's Rollout row (each phase, each batch, has its own)."""
        return self.phases[-1].result.rollout if self.phases else None

    @property
    def migrated(self) -> list[str]:
        """Schemas that moved in at least one phase and failed in none."""
        failed = self.failed
        return sorted({s for phase in self.phases for s, r in phase.result.results.items()
                       if r["status"] == "ok"} - set(failed))

    def as_dict(self) -> dict:
        stages: dict[str, dict] = {}
        for phase in self.phases:
            entry = stages.setdefault(phase.stage, {"stage": phase.stage, "migrated": set(), "failed": set()})
            entry["failed"].update(phase.result.failed)
            entry["migrated"].update(s for s, r in phase.result.results.items() if r["status"] == "ok")
        return {
            "rollout": self.rollout.pk if self.rollout else None,
            "rollouts": [phase.result.rollout.pk for phase in self.phases if phase.result.rollout],
            "phases": [phase.summary for phase in self.phases],
            "stages": [{"stage": e["stage"], "migrated": len(e["migrated"] - e["failed"]),
                        "failed": sorted(e["failed"])} for e in stages.values()],
            "migrated": len(self.migrated), "failed": sorted(self.failed), "canary_left": self.canary_left,
            "halted": self.halted, "status": self.rollout.status if self.rollout else "nothing to do",
        }


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
                   canary: int | None = None, percent: int | None = None, then_rest: bool = False,
                   halt_on_failure: bool = False, resume: bool = False, batch_size: int = DEFAULT_BATCH,
                   workers: int | None = None, by: str | None = None, progress=None,
                   phase_done=None) -> PhasedResult:
    """Tenant schemas (every one, or `schemas`) to `targets` (default: every app's latest), schema migrations
    before data migrations, the data migrations in batches of `batch_size` schemas.

    A canary (`canary` schemas, or `percent` of those with something to do, rounded up) runs the phases first
    on its schemas alone, one at a time, halting at its first failure; then, with `then_rest`, the phases run
    over the rest (one at a time halting at the first failure with `halt_on_failure`, else in parallel);
    without it the canary's last row stays partial and `resume=True` does the rest.

    `progress(result)` is called per schema as in rollout_run, the result carrying its `phase` (kind,
    migration, type, batch, batches, stage: see phase_label); `phase_done(phase)` after each phase (each batch
    of a data phase). Stops after the first phase or batch with a failure: what is left is pending, and a rerun
    (or `resume=True`) picks it up.
    """
    _check(batch_size, canary)
    outcome = PhasedResult()
    if resume:
        if schemas or targets or canary or percent:
            raise ValidationError({"resume": "A resume reuses the last rollout's targets and schemas; give neither "
                                             "(nor a canary)."})
        previous = selectors.rollout_latest_resumable()
        if previous is None:
            raise DomainError("Nothing to resume: the last rollout finished every schema.", code="nothing_to_resume")
        stamp = dict(previous.phase or {})
        stage = stamp.get("stage") or "all"
        if _holds_the_rest(previous):
            # A canary that passed: its row lists the rest as pending. The rest goes through the phases (never the
            # row's one pass, which would run a data migration inside its schema migrations' lock), and the row
            # is settled from what they did.
            targets = [tuple(t) for t in stamp["goal"]] if stamp.get("goal") else None
            names = sorted(set(stamp["scope"])) if stamp.get("scope") else selectors.tenant_schema_names()
            _run_phases(outcome, names=names, goal=targets, one_by_one=halt_on_failure, batch_size=batch_size,
                        workers=workers, by=by, progress=progress, phase_done=phase_done,
                        stamp={"goal": stamp.get("goal") or [], "scope": stamp.get("scope"),
                               "canary": stamp.get("canary"), "stage": "rest"})
            _settle(previous, outcome)
            if outcome.failed:
                outcome.halted = _halted(outcome.failed, halt_on_failure)
            return outcome
        finished = rollout_run(resume=True, workers=workers, by=by, progress=_tagged(progress, stamp),
                               canary=_one_by_one(previous, halt_on_failure))
        outcome.phases.append(Phase(stamp.get("kind") or "schema", stamp.get("migration", ""), finished,
                                    stamp.get("batch", 1), stamp.get("batches", 1), stamp.get("type", ""), stage))
        if phase_done is not None:
            phase_done(outcome.phases[-1])
        if finished.failed:
            outcome.halted = _halted(finished.failed, halt_on_failure)
            return outcome
        if not stamp:
            return outcome  # a plain rollout's row: resumed as it was
        schemas = stamp.get("scope")
        targets = [tuple(t) for t in stamp["goal"]] if stamp.get("goal") else None
        stage = "rest" if stage in ("canary", "rest") else "all"
    else:
        stage = "all"
    names = sorted(set(schemas)) if schemas else selectors.tenant_schema_names()
    graph = load_graph()
    goal = [tuple(t) for t in targets] if targets else None
    applied = selectors.applied_migrations_by_schema(names)
    todo = [name for name, plan in _plans(graph, goal, names, applied).items() if plan]
    size = canary_size(todo=len(todo), canary=canary, percent=percent) if canary or percent else None
    if goal is not None and (any(name is None for _, name in goal) or any(
            backwards for plan in _plans(graph, goal, names, applied).values() for _, backwards in plan)):
        # A rollback: reversing has no phases; one plain pass, as `rollout` always did.
        # With a canary: its schemas one by one, then (`then_rest`) the row's pending rest.
        first = "canary" if size else stage
        result = rollout_run(schemas=schemas, targets=goal, workers=workers, by=by,
                             canary=size or (len(todo) if halt_on_failure and todo else None),
                             progress=_tagged(progress, {"kind": "rollback", "stage": first}))
        outcome.phases.append(Phase("rollback", "", result, stage=first))
        if phase_done is not None:
            phase_done(outcome.phases[-1])
        if size and result.stopped_early and not result.failed and then_rest:
            left = sum(1 for r in result.rollout.results.values() if r["status"] == "pending")
            result = rollout_run(resume=True, workers=workers, by=by, canary=left if halt_on_failure else None,
                                 progress=_tagged(progress, {"kind": "rollback", "stage": "rest"}))
            outcome.phases.append(Phase("rollback", "", result, stage="rest"))
            if phase_done is not None:
                phase_done(outcome.phases[-1])
        if result.failed:
            outcome.halted = (f"the canary failed in {', '.join(sorted(result.failed))}; the rest was not started"
                              if first == "canary" and len(outcome.phases) == 1
                              else _halted(result.failed, halt_on_failure))
        elif result.stopped_early:
            outcome.halted = "canary done; resume the rollout for the rest"
        return outcome
    scope_schemas = list(schemas) if schemas else None
    stamp = {"goal": [list(t) for t in goal] if goal else [], "scope": scope_schemas, "canary": size}
    run = dict(goal=goal, batch_size=batch_size, workers=workers, by=by, progress=progress, phase_done=phase_done)
    if size is not None:
        outcome.canary_left = len(todo) - size
        _run_phases(outcome, names=todo[:size], one_by_one=True, stamp={**stamp, "stage": "canary"}, **run)
        if outcome.failed:
            outcome.halted = (f"the canary failed in {', '.join(sorted(outcome.failed))}; "
                              "the rest was not started")
            return outcome
        if outcome.canary_left and then_rest:
            outcome.canary_left = 0
            _run_phases(outcome, names=names, one_by_one=halt_on_failure, stamp={**stamp, "stage": "rest"}, **run)
        elif outcome.canary_left and outcome.phases:
            # The canary's last row stays open: `rollout --resume` finds it and does the rest.
            outcome.halted = f"canary done; {outcome.canary_left} schema(s) left: resume the rollout for the rest"
            last = outcome.rollout
            if last is not None:  # the rest listed on it as pending, as the admin's rollout page shows it
                for name in todo[size:]:
                    last.results.setdefault(name, {"status": "pending", "error": "", "applied": []})
                last.total, last.status = len(last.results), Rollout.Status.PARTIAL
                Rollout.objects.filter(pk=last.pk).update(status=last.status, total=last.total,
                                                          results=last.results)
            return outcome
    else:
        _run_phases(outcome, names=names, one_by_one=halt_on_failure, stamp={**stamp, "stage": stage}, **run)
    if outcome.failed:
        outcome.halted = _halted(outcome.failed, halt_on_failure)
    return outcome


def _holds_the_rest(row: Rollout) -> bool:
    """A canary's last row that passed and lists the rest as pending (what `resume` does in phases)."""
    return ((row.phase or {}).get("stage") == "canary" and row.status == Rollout.Status.PARTIAL
            and not any(r.get("status") == "failed" for r in row.results.values()))


def _settle(row: Rollout, outcome: PhasedResult) -> None:
    """The canary's row after the rest ran: each pending schema ok (with what the phases applied to it) when the
    rest finished without a failure; otherwise the row stays partial, and the next resume goes on."""
    if outcome.failed:
        return
    applied: dict[str, list[str]] = {}
    for phase in outcome.phases:
        for schema, result in phase.result.results.items():
            applied.setdefault(schema, []).extend(result.get("applied") or [])
    for schema, result in row.results.items():
        if result.get("status") == "pending":
            row.results[schema] = {"status": "ok", "error": "", "applied": applied.get(schema, [])}
    row.done, row.status, row.finished_at = len(row.results), Rollout.Status.SUCCEEDED, now()
    Rollout.objects.filter(pk=row.pk).update(results=row.results, done=row.done, status=row.status,
                                             finished_at=row.finished_at)


def _halted(failed: dict, one_by_one: bool) -> str:
    names = ", ".join(sorted(failed))
    if one_by_one:
        return f"halted at the first failure ({names}); resume after the fix"
    return f"stopped after the phase that failed in {names}; resume after the fix"


def _one_by_one(previous: Rollout, halt_on_failure: bool) -> int | None:
    """A resumed row one schema at a time (halting at the first failure) when asked or when it was a canary's."""
    stage = (previous.phase or {}).get("stage")
    if halt_on_failure or stage == "canary":
        return max(1, sum(1 for r in previous.results.values() if r.get("status") != "ok"))
    return None


def _tagged(progress, stamp: dict):
    """`progress` given each schema's result with the phase it ran in."""
    if progress is None:
        return None
    phase = {k: stamp[k] for k in ("kind", "migration", "type", "batch", "batches", "stage") if k in stamp}

    def tagged(result):
        progress({**result, "phase": phase})

    return tagged


def _run_phases(outcome: PhasedResult, *, names, goal, one_by_one, batch_size, workers, by, progress, phase_done,
                stamp) -> None:
    graph = load_graph()
    scope = _closure(graph, goal)
    applied = selectors.applied_migrations_by_schema(names)
    limit = 2 * len(_pending_data(graph, applied, scope)) + 2

    def run(kind, migration, schemas, targets, batch=1, batches=1, type_=""):
        current = {**stamp, "kind": kind, "migration": migration, "type": type_, "batch": batch, "batches": batches}
        token = _phase.set(current)
        try:
            result = rollout_run(schemas=schemas, targets=targets, workers=workers, by=by,
                                 progress=_tagged(progress, current),
                                 canary=len(schemas) if one_by_one and schemas else None)
        finally:
            _phase.reset(token)
        phase = Phase(kind, migration, result, batch, batches, type_, stamp.get("stage", "all"))
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
