"""Migration types that mean something: a rollout in phases, schema migrations first, then each data migration.

A data (or hybrid) migration never runs in the transaction of a schema change:
`rollout_phased` migrates every schema up to just before the first pending data
migration (the schema phase, one transaction per schema), then runs that data
migration alone in each schema that lacks it (the data phase, one transaction
per schema, so no ALTER TABLE lock is held while rows are rewritten), and goes
on until nothing is pending. Each phase is a Rollout row: the data phase's row
shows which schemas are done, failed or pending, and a rerun (or `--resume`)
does only the schemas left. A schema already past a phase's targets sits the
phase out: a phase never rolls anything back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas import selectors
from schemas.executor import SchemaMigrator
from schemas.graph import DATA, HYBRID, Graph, Key, load_graph
from schemas.services import RolloutResult, rollout_run


@dataclass
class Phase:
    kind: str  # "schema" or "data"
    migration: str  # the data migration of a data phase, "" for a schema phase
    result: RolloutResult

    @property
    def done(self) -> int:
        return sum(1 for r in self.result.results.values() if r["status"] == "ok")


@dataclass
class PhasedResult:
    phases: list[Phase] = field(default_factory=list)

    @property
    def failed(self) -> dict[str, dict]:
        failed: dict[str, dict] = {}
        for phase in self.phases:
            failed.update(phase.result.failed)
        return failed


def _pending_data(graph: Graph, applied: dict[str, set[Key]]) -> list[Key]:
    """Data and hybrid migrations pending in at least one schema, in dependency order."""
    pending: set[Key] = set()
    for keys in applied.values():
        pending.update(k for k in graph.pending(keys) if graph.type_of(k) in (DATA, HYBRID))
    return [key for key in graph.ordered if key in pending]


def schema_phase_targets(graph: Graph, blocked: set[Key]) -> list[tuple[str, str | None]]:
    """Per app, its latest migration that needs none of `blocked` (the pending data migrations) first."""
    plan = graph.loader.graph.forwards_plan
    targets = []
    for app in sorted({app for app, _ in graph.ordered}):
        chain = [key for key in graph.ordered if key[0] == app]
        allowed = [key for key in chain if not blocked.intersection(plan(key))]
        targets.append((app, allowed[-1][1] if allowed else None))
    return targets


def _forwards_schemas(graph: Graph, targets, names: list[str], applied: dict[str, set[Key]]) -> list[str]:
    """The schemas these targets move forwards only (a schema ahead of them sits the phase out)."""
    migrator = SchemaMigrator(targets=targets, graph=graph)
    chosen = []
    for name in names:
        plan = migrator.plan(applied[name])
        if plan and not any(backwards for _, backwards in plan):
            chosen.append(name)
    return chosen


def rollout_phased(*, schemas: list[str] | None = None, workers: int | None = None, by: str | None = None,
                   progress=None, phase_done=None) -> PhasedResult:
    """Every tenant schema (or `schemas`) to every app's latest, schema migrations before data migrations.

    `progress(result)` is called per schema as in rollout_run; `phase_done(phase)` after each phase. Stops
    after the first phase with a failure: what is left is pending, and a rerun picks it up.
    """
    names = list(schemas) if schemas else selectors.tenant_schema_names()
    outcome = PhasedResult()
    graph = load_graph()
    applied = selectors.applied_migrations_by_schema(names)
    limit = 2 * len(_pending_data(graph, applied)) + 2
    for round_ in range(limit):
        if round_:  # the first round uses the read above; later ones look again (a phase moved the state)
            graph = load_graph()
            applied = selectors.applied_migrations_by_schema(names)
        pending_data = _pending_data(graph, applied)
        targets = schema_phase_targets(graph, set(pending_data)) if pending_data else None
        chosen = _forwards_schemas(graph, targets, names, applied)
        if not chosen and not pending_data and outcome.phases:
            return outcome  # the phases did it all: no empty rollout row at the end
        if chosen or not pending_data:
            phase = Phase("schema", "", rollout_run(schemas=chosen or schemas, targets=targets, workers=workers,
                                                    by=by, progress=progress, applied=applied))
            outcome.phases.append(phase)
            if phase_done is not None:
                phase_done(phase)
            if phase.result.failed or not pending_data:
                return outcome
            continue  # the applied state moved: look again before the data phase
        data = pending_data[0]
        chosen = _forwards_schemas(graph, [data], names, applied)
        phase = Phase("data", f"{data[0]}.{data[1]}",
                      rollout_run(schemas=chosen, targets=[data], workers=workers, by=by, progress=progress))
        outcome.phases.append(phase)
        if phase_done is not None:
            phase_done(phase)
        if phase.result.failed:
            return outcome
    return outcome
