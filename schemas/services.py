"""Every write of the schemas app: the ledger, rollouts over many schemas, drift reports."""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.apps import apps as django_apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, connections

from core.errors import DomainError
from core.locks import advisory_lock, lock_key
from schemas import selectors
from schemas.executor import SchemaMigrator, set_worker_migrator, worker_run
from schemas.graph import Key, apps_for, load_graph
from schemas.ledger import (  # noqa: F401  (ledger_* are also reached as schemas.services.*)
    ledger_baseline,
    ledger_record,
    ledger_record_failure,
    ledger_record_stock_plan,
    ledger_schema_forget,
    ledger_schema_rename,
    now,
    operator_name,
)
from schemas.models import Rollout
from schemas.spares import SpareCount, spare_counts

# One key for every rollout, on every machine: advisory locks are per database (core.locks).
ROLLOUT_LOCK_KEY = lock_key("rollout")


# -- drift --------------------------------------------------------------------------------


@dataclass
class SchemaReport:
    """What is wrong with one schema, if anything."""

    schema: str
    exists: bool = True
    pending: list[Key] = field(default_factory=list)
    gone: list[Key] = field(default_factory=list)
    changed: list[Key] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    latest: dict[str, str | None] = field(default_factory=dict)

    @property
    def problems(self) -> bool:
        return bool(not self.exists or self.pending or self.gone or self.changed
                    or self.missing_tables or self.missing_columns)

    def app_status(self, app: str, leaf: str | None) -> str:
        if not self.exists:
            return "missing schema"
        if any(k[0] == app for k in self.gone):
            return "file gone"
        if any(k[0] == app for k in self.changed):
            return "changed"
        if any(t.startswith(f"{app}.") for t in self.missing_tables + self.missing_columns):
            return "missing table"
        if any(k[0] == app for k in self.pending):
            return "pending"
        return "ok"


@dataclass
class DriftReport:
    schemas: list[SchemaReport]
    latest: dict[str, str]
    changed_files: list[dict] = field(default_factory=list)
    gone_files: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    spares: list[SpareCount] = field(default_factory=list)  # spare schemas, counted, not reported
    types: dict[Key, str] = field(default_factory=dict)  # schema/data/hybrid of each pending or changed migration

    @property
    def problem_schemas(self) -> list[SchemaReport]:
        return [s for s in self.schemas if s.problems]

    def as_dict(self) -> dict:
        def keys(items):
            return [f"{a}.{n}" for a, n in items]

        report = {
            "schemas": [
                {"schema": s.schema, "exists": s.exists, "pending": keys(s.pending), "file_gone": keys(s.gone),
                 "changed": keys(s.changed), "missing_tables": s.missing_tables,
                 "missing_columns": s.missing_columns, "latest": s.latest}
                for s in self.schemas
            ],
            "latest": self.latest,
            "changed_files": self.changed_files,
            "gone_files": self.gone_files,
            "seconds": round(self.seconds, 3),
            # schema, data or hybrid, of every migration named above as pending or changed.
            "types": {f"{a}.{n}": kind for (a, n), kind in sorted(self.types.items())},
        }
        for count in self.spares:  # e.g. "pool": {"ready": 2, "stale": 0, "summary": "pool: 2 ready, 0 stale"}
            report.setdefault(count.label, count.as_dict())
        return report


def _expected_tables(app_labels: list[str]) -> dict[str, list[tuple[str, str, list[str]]]]:
    """{app: [(model label, table, [columns])]} for the tables migrations should have created."""
    expected: dict[str, list[tuple[str, str, list[str]]]] = defaultdict(list)
    for label in app_labels:
        try:
            config = django_apps.get_app_config(label)
        except LookupError:
            continue
        for model in config.get_models(include_auto_created=True):
            meta = model._meta
            if not meta.managed or meta.proxy or meta.swapped:
                continue
            columns = [f.column for f in meta.local_concrete_fields if f.column]
            expected[label].append((meta.label, meta.db_table, columns))
    return expected


def drift_report(*, schemas: list[str] | None = None, include_public: bool = True,
                 check_tables: bool = True) -> DriftReport:
    """Pending, changed, gone and missing-table problems of every schema, read in a few SQL statements.

    Every schema means public and every tenant's; spare schemas (the sign-up
    pool) are only counted, in `spares`, unless asked for by name.
    """
    started = time.monotonic()
    graph = load_graph()
    public = settings.PUBLIC_SCHEMA_NAME
    names = list(schemas) if schemas is not None else selectors.tenant_schema_names()
    if include_public and public not in names:
        names = [public, *names]
    existing = selectors.existing_schemas(names)
    applied_by_schema = selectors.applied_migrations_by_schema([n for n in names if n in existing])
    known = graph.known()
    # Public holds the shared apps' tables only: a tenant app's migration has nothing to apply there (rollouts
    # migrate tenant schemas), so it is never pending in public, whether or not django_migrations lists it.
    public_apps = set(apps_for(public))

    reports: dict[str, SchemaReport] = {}
    for name in names:
        report = SchemaReport(schema=name, exists=name in existing)
        reports[name] = report
        if not report.exists:
            continue
        applied = applied_by_schema.get(name, set())
        report.pending = graph.pending(applied)
        if name == public:
            report.pending = [key for key in report.pending if key[0] in public_apps]
        report.gone = sorted(k for k in applied if k not in known)
        effective = graph.effective_applied(applied)
        for app, name_ in graph.ordered:
            if (app, name_) in effective:
                report.latest[app] = name_
            else:
                report.latest.setdefault(app, None)

    gone_files: dict[Key, list[str]] = defaultdict(list)
    for report in reports.values():
        for key in report.gone:
            gone_files[key].append(report.schema)

    changed_files: dict[Key, dict] = {}
    for (app, name, checksum), recorded_in in selectors.recorded_checksums(
            names if schemas is not None else None).items():
        key = (app, name)
        if key not in graph.nodes:
            continue
        current = graph.checksum(key)
        if current == checksum:
            continue
        affected = [s for s in recorded_in if s in reports and key in applied_by_schema.get(s, ())]
        if not affected:
            continue
        entry = changed_files.setdefault(key, {"app": app, "name": name, "file": graph.path(key),
                                              "checksum": current, "schemas": []})
        entry["schemas"] = sorted(set(entry["schemas"]) | set(affected))
        for schema in affected:
            if key not in reports[schema].changed:
                reports[schema].changed.append(key)

    if check_tables:
        _check_tables(reports, public)

    return DriftReport(
        schemas=list(reports.values()),
        latest=graph.latest_by_app(),
        changed_files=sorted(changed_files.values(), key=lambda e: (e["app"], e["name"])),
        gone_files=[{"app": a, "name": n, "schemas": sorted(s)} for (a, n), s in sorted(gone_files.items())],
        seconds=time.monotonic() - started,
        spares=spare_counts(),
        types={key: graph.type_of(key) for report in reports.values()
               for key in [*report.pending, *report.changed]},
    )


def _check_tables(reports: dict[str, SchemaReport], public: str) -> None:
    """Tables and columns django_migrations claims but the schema lacks (e.g. a stale clone base)."""
    kinds = {"public": apps_for(public), "tenant": apps_for("__tenant__")}
    expected = {kind: _expected_tables(labels) for kind, labels in kinds.items()}
    tables = sorted({t for exp in expected.values() for items in exp.values() for _, t, _ in items})
    live = [r.schema for r in reports.values() if r.exists]
    found = selectors.columns_by_schema(live, tables)
    for report in reports.values():
        if not report.exists:
            continue
        kind = "public" if report.schema == public else "tenant"
        pending_apps = {app for app, _ in report.pending}
        for app, items in expected[kind].items():
            if app in pending_apps or report.latest.get(app) is None:
                continue  # not claimed applied yet: a pending migration, not drift
            for _label, table, columns in items:
                have = found.get(report.schema, {}).get(table)
                if have is None:
                    report.missing_tables.append(f"{app}.{table}")
                    continue
                report.missing_columns.extend(f"{app}.{table}.{c}" for c in columns if c not in have)


# -- rollout ------------------------------------------------------------------------------


class RolloutRefused(DomainError):
    code = "rollout_locked"
    status = 409


@contextmanager
def rollout_lock():
    """Hold the PostgreSQL advisory lock for a rollout on a connection of its own.

    Its own connection, because the rollout closes the shared one before it
    forks workers, and closing would release a session-level lock.
    """
    lock_connection = connections.create_connection(connection.alias)
    try:
        with advisory_lock("rollout", wait=False, using=lock_connection) as acquired:
            if not acquired:
                holder = _lock_holder(lock_connection)
                raise RolloutRefused(
                    f"Another rollout is already running{holder}; wait for it to finish, then retry (or --resume).",
                    detail={"lock_key": ROLLOUT_LOCK_KEY},
                )
            yield
    finally:
        lock_connection.close()  # ends the session: the lock goes with it


def _lock_holder(lock_connection) -> str:
    with lock_connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.pid, a.application_name, a.client_addr::text, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
            "AND l.objid = %s AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            [ROLLOUT_LOCK_KEY & 0xFFFFFFFF],
        )
        row = cursor.fetchone()
    return f" (PostgreSQL backend pid {row[0]}, since {row[3]:%Y-%m-%d %H:%M:%S %Z})" if row else ""


def parse_target(value: str) -> tuple[str, str | None]:
    """'app.0002_name', 'app:0002_name', 'app 0002' or 'app.zero' to a (app, name) target."""
    value = (value or "").strip()
    for sep in (":", ".", " "):
        if sep in value:
            app, name = value.split(sep, 1)
            break
    else:
        raise ValidationError({"target": f"{value!r}: give a target as app.migration_name (or app.zero)."})
    graph = load_graph()
    if name == "zero":
        return (app, None)
    try:
        migration = graph.loader.get_migration_by_prefix(app, name)
    except Exception as error:  # AmbiguityError or KeyError with Django's own message
        raise ValidationError({"target": f"{value!r}: {error}"}) from error
    return (migration.app_label, migration.name)


@dataclass
class RolloutResult:
    rollout: Rollout | None
    plans: dict[str, list[tuple[Key, bool]]]
    results: dict[str, dict]
    skipped: int = 0
    stopped_early: bool = False

    @property
    def failed(self) -> dict[str, dict]:
        return {s: r for s, r in self.results.items() if r.get("status") == "failed"}


def _validate_schemas(names: list[str]) -> list[str]:
    known = set(selectors.tenant_schema_names())
    unknown = sorted(set(names) - known)
    if unknown:
        raise ValidationError({"schemas": f"Not a tenant schema: {', '.join(unknown)}."})
    return sorted(set(names))


def rollout_run(*, schemas: list[str] | None = None, targets: list[tuple[str, str | None]] | None = None,
                workers: int | None = None, canary: int | None = None, resume: bool = False,
                dry_run: bool = False, by: str | None = None, progress=None) -> RolloutResult:
    """Migrate tenant schemas to targets (default: every app's latest), one transaction per schema.

    Failures are isolated: a failed schema stays wholly on its old state
    (PostgreSQL DDL is transactional), the others carry on, and the rollout
    row lists each schema's outcome so `resume` retries only what is left.
    A plan that goes backwards is a rollback; `dry_run` only returns plans.
    """
    by = operator_name(by)
    if resume:
        previous = selectors.rollout_latest_resumable()
        if previous is None:
            raise DomainError("Nothing to resume: the last rollout finished every schema.", code="nothing_to_resume")
        targets = [tuple(t) for t in previous.targets] or None
        names = sorted(s for s, r in previous.results.items() if r.get("status") != "ok")
        existing = set(selectors.tenant_schema_names())
        names = [n for n in names if n in existing]
    else:
        previous = None
        names = _validate_schemas(schemas) if schemas else selectors.tenant_schema_names()
    if canary is not None and canary < 1:
        raise ValidationError({"canary": "The canary needs at least one schema."})

    migrator_graph = load_graph()

    migrator = SchemaMigrator(targets=targets, by=by, graph=migrator_graph)
    applied = selectors.applied_migrations_by_schema(names)
    plans = {name: migrator.plan(applied[name]) for name in names}
    todo = [name for name in names if plans[name]]
    if dry_run:
        return RolloutResult(rollout=None, plans=plans, results={}, skipped=len(names) - len(todo))

    with rollout_lock():
        if previous is not None:
            rollout = previous
            rollout.status = Rollout.Status.RUNNING
        else:
            rollout = Rollout(targets=[list(t) for t in targets or []], started_by=by,
                              backwards=any(b for plan in plans.values() for _, b in plan[:1]))
        rollout.total = len(set(rollout.results) | set(names))
        for name in names:
            rollout.results[name] = {"status": "pending" if plans[name] else "ok", "error": "", "applied": []}
        rollout.done = sum(1 for r in rollout.results.values() if r["status"] != "pending")
        rollout.full_clean()
        rollout.save()
        migrator.rollout_id = rollout.pk

        stopped_early = False
        results: dict[str, dict] = {}
        if canary is not None:
            batch = todo[:canary]
            for name in batch:
                results[name] = migrator.run(name)
                _progress_update(rollout, results[name], progress)
                if results[name]["status"] == "failed":
                    stopped_early = True
                    break
            stopped_early = stopped_early or len(batch) < len(todo)
        else:
            for result in _run_parallel(migrator, todo, workers):
                results[result["schema"]] = result
                _progress_update(rollout, result, progress, save_every=2.0)

        failed = any(r["status"] == "failed" for r in rollout.results.values())
        pending = any(r["status"] == "pending" for r in rollout.results.values())
        rollout.status = (Rollout.Status.FAILED if failed else
                          Rollout.Status.PARTIAL if pending else Rollout.Status.SUCCEEDED)
        rollout.finished_at = now()
        rollout.save()
    return RolloutResult(rollout=rollout, plans=plans, results=results, skipped=len(names) - len(todo),
                         stopped_early=stopped_early)


_last_save = 0.0


def _progress_update(rollout: Rollout, result: dict, progress, save_every: float = 0.0) -> None:
    global _last_save
    rollout.results[result["schema"]] = {k: result.get(k) for k in ("status", "error", "applied")}
    rollout.done = sum(1 for r in rollout.results.values() if r["status"] != "pending")
    if progress is not None:
        progress(result)
    if time.monotonic() - _last_save >= save_every:
        Rollout.objects.filter(pk=rollout.pk).update(done=rollout.done, results=rollout.results)
        _last_save = time.monotonic()


def default_workers() -> int:
    # Twice the cores: a worker spends about half its time waiting for PostgreSQL's round trips.
    return max(1, min(2 * (os.cpu_count() or 1), 8))


def _run_parallel(migrator, todo: list[str], workers: int | None):
    """Yield each schema's result; a fork pool of workers, each with its own database connection."""

    workers = min(workers or default_workers(), len(todo))
    if workers <= 1 or len(todo) <= 1:
        for name in todo:
            yield migrator.run(name)
        return
    if multiprocessing.current_process().daemon:
        # A daemonic process (a django-q2 worker: a rollout started from the admin) may not have children.
        yield from _run_threads(migrator, todo, workers)
        return
    # Render the common project state once here: forked workers inherit it.
    counts: dict[frozenset, int] = defaultdict(int)
    applied_by_schema = selectors.applied_migrations_by_schema(todo)
    for name in todo:
        counts[frozenset(applied_by_schema[name])] += 1
    migrator.warm(set(max(counts, key=counts.get)))
    set_worker_migrator(migrator)
    # Forked children must open their own connections, never share the parent's socket.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    chunksize = max(1, min(16, len(todo) // (workers * 8) or 1))
    with context.Pool(workers) as pool:
        try:
            yield from pool.imap_unordered(worker_run, todo, chunksize=chunksize)
        finally:
            set_worker_migrator(None)


def _run_threads(migrator, todo: list[str], workers: int):
    """Yield each schema's result from `workers` threads, each with its own migrator and database connection.

    Used where no child process may be started. A migration spends most of its
    time waiting for PostgreSQL, so threads still overlap well; each thread
    loads its own graph because a migrator's loader is not shared safely.
    """
    results: queue.Queue = queue.Queue()
    shares = [todo[i::workers] for i in range(workers)]

    def work(names: list[str]) -> None:
        left = list(names)
        try:
            own = SchemaMigrator(targets=migrator.targets, by=migrator.by, rollout_id=migrator.rollout_id)
            while left:
                results.put(own.run(left[0]))  # run() reports a schema's own failure itself
                left.pop(0)
        except Exception as error:  # noqa: BLE001  the thread itself broke: its remaining schemas fail, reported
            for name in left:
                results.put({"schema": name, "status": "failed", "applied": [], "error": f"worker thread: {error}"})
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=work, args=(share,), name=f"rollout-{i}", daemon=True)
               for i, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for _ in todo:
        yield results.get()
    for thread in threads:
        thread.join()
