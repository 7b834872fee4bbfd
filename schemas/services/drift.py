"""Drift reports: what is pending, changed, gone or missing in every schema, read in a few SQL statements."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from django.apps import apps as django_apps
from django.conf import settings

from schemas import selectors
from schemas.graph import Key, apps_for, load_graph
from schemas.spares import SpareCount, spare_counts


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

    def state_of(applied: frozenset) -> tuple[tuple[Key, ...], tuple[Key, ...], dict[str, str | None]]:
        """(pending, gone, latest per app) of one applied set: computed once per distinct state."""
        def compute():
            effective = graph.effective_applied(applied)
            latest: dict[str, str | None] = {}
            for app, name_ in graph.ordered:
                if (app, name_) in effective:
                    latest[app] = name_
                else:
                    latest.setdefault(app, None)
            return (tuple(graph.pending(applied)), tuple(sorted(k for k in applied if k not in known)), latest)

        return graph.memo("drift", applied, compute)

    reports: dict[str, SchemaReport] = {}
    for name in names:
        report = SchemaReport(schema=name, exists=name in existing)
        reports[name] = report
        if not report.exists:
            continue
        pending, gone, latest = state_of(applied_by_schema.get(name, frozenset()))
        report.pending = ([key for key in pending if key[0] in public_apps] if name == public else list(pending))
        report.gone = list(gone)
        report.latest = dict(latest)

    gone_files: dict[Key, list[str]] = defaultdict(list)
    for report in reports.values():
        for key in report.gone:
            gone_files[key].append(report.schema)

    # Only the ledger rows whose checksum differs from today's file come back (one statement, compared in
    # PostgreSQL): a no-op check over 10,000 schemas reads none of the ~100 rows per schema that match.
    current = {key: graph.checksum(key) for key in graph.nodes}
    changed_files: dict[Key, dict] = {}
    for (app, name, _checksum), recorded_in in selectors.ledger_checksum_mismatches(
            current=current, schemas=names if schemas is not None else None).items():
        key = (app, name)
        affected = [s for s in recorded_in if s in reports and key in applied_by_schema.get(s, ())]
        if not affected:
            continue
        entry = changed_files.setdefault(key, {"app": app, "name": name, "file": graph.path(key),
                                              "sources": graph.sources(key), "checksum": current[key],
                                              "schemas": []})
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


_NO_TABLES: dict[str, set[str]] = {}


def _check_tables(reports: dict[str, SchemaReport], public: str) -> None:
    """Tables and columns django_migrations claims but the schema lacks (e.g. a stale clone base)."""
    kinds = {"public": apps_for(public), "tenant": apps_for("__tenant__")}
    expected = {kind: _expected_tables(labels) for kind, labels in kinds.items()}
    tables = sorted({t for exp in expected.values() for items in exp.values() for _, t, _ in items})
    live = [r.schema for r in reports.values() if r.exists]
    found = selectors.columns_by_schema(live, tables)
    # Schemas of one shape (same columns, same claimed apps) have the same missing tables and columns: the
    # comparison runs once per distinct shape, not once per schema.
    verdicts: dict[tuple, tuple[list[str], list[str]]] = {}
    for report in reports.values():
        if not report.exists:
            continue
        kind = "public" if report.schema == public else "tenant"
        pending_apps = frozenset(app for app, _ in report.pending)
        unclaimed = frozenset(app for app, name in report.latest.items() if name is None)
        have_all = found.get(report.schema, _NO_TABLES)
        shape = (kind, id(have_all), pending_apps, unclaimed)
        if shape not in verdicts:
            missing_tables: list[str] = []
            missing_columns: list[str] = []
            for app, items in expected[kind].items():
                if app in pending_apps or app in unclaimed or app not in report.latest:
                    continue  # not claimed applied yet: a pending migration, not drift
                for _label, table, columns in items:
                    have = have_all.get(table)
                    if have is None:
                        missing_tables.append(f"{app}.{table}")
                        continue
                    missing_columns.extend(f"{app}.{table}.{c}" for c in columns if c not in have)
            verdicts[shape] = (missing_tables, missing_columns)
        report.missing_tables.extend(verdicts[shape][0])
        report.missing_columns.extend(verdicts[shape][1])
