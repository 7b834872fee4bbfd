"""Reads of the ledger and of every schema's applied migrations, each in one SQL pass."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from pathlib import Path

from django.apps import apps as django_apps
from django.core.cache import cache
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django_tenants.utils import get_public_schema_name, get_tenant_model

from schemas.graph import apps_for, load_graph
from schemas.models import AppliedState, LedgerState, MigrationRecord, Rollout
from schemas.spares import spare_prefixes

# UNION ALL branches per statement: one round-trip per 250 schemas keeps the statement small enough to plan
# quickly (measured at 1,000 schemas: 250 a statement as fast as 500, 1,000 a statement twice as slow).
_UNION_CHUNK = 250


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def tenant_schema_names() -> list[str]:
    """Every tenant schema known to the tenants table, public excluded, in a stable order."""
    return list(
        get_tenant_model().objects.exclude(schema_name=get_public_schema_name())
        .order_by("schema_name").values_list("schema_name", flat=True)
    )


# The django_migrations tables of the asked schemas, read by oid (to_regclass: a catalog-cache probe each): by
# relname = 'django_migrations' PostgreSQL reads every schema's table of that name, 10,000 rows for a page of 100.
_MIGRATION_TABLES_OF = ("c.oid = ANY(ARRAY(SELECT to_regclass(quote_ident(s) || '.django_migrations') "
                        "FROM unnest(%s::text[]) AS s))")


def schemas_with_migration_table(schema_names: list[str]) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p') AND {_MIGRATION_TABLES_OF}",
            [list(schema_names)],
        )
        return {row[0] for row in cursor.fetchall()}


def existing_schemas(schema_names: list[str]) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [list(schema_names)])
        return {row[0] for row in cursor.fetchall()}


def applied_migrations_by_schema(schema_names: list[str]) -> dict[str, frozenset[tuple[str, str]]]:
    """{schema: frozenset({(app, name), ...})} of every schema's django_migrations, set-based.

    A schema without a django_migrations table maps to an empty set. Two
    passes, each a few statements whatever the number of schemas: first one
    fingerprint per schema (its row count and the MD5 of its sorted
    (app, name) list, computed by PostgreSQL: one row per schema comes back,
    not one per migration), then the rows of one schema per distinct
    fingerprint. Schemas that hold the same migrations share one frozenset, so
    planning and drift run once per distinct state, not once per schema
    (10,000 schemas are mostly a handful of states). Exact: two schemas share a
    set only if their count and MD5 are equal.
    """
    empty: frozenset[tuple[str, str]] = frozenset()
    result: dict[str, frozenset[tuple[str, str]]] = dict.fromkeys(schema_names, empty)
    fingerprints = applied_fingerprints(schema_names)
    representatives: dict[tuple[int, str], str] = {}
    for schema, fingerprint in fingerprints.items():
        representatives.setdefault(fingerprint, schema)
    rows: dict[str, set[tuple[str, str]]] = defaultdict(set)
    reps = sorted(schema for (count, _md5), schema in representatives.items() if count)
    with connection.cursor() as cursor:
        for start in range(0, len(reps), _UNION_CHUNK):
            chunk = reps[start:start + _UNION_CHUNK]
            cursor.execute(" UNION ALL ".join(
                f"SELECT %s::text, app, name FROM {_quote(schema)}.django_migrations" for schema in chunk), chunk)
            for schema, app, name in cursor.fetchall():
                rows[schema].add((app, name))
    shared = {fingerprint: frozenset(rows.get(schema, ())) for fingerprint, schema in representatives.items()}
    for schema, fingerprint in fingerprints.items():
        result[schema] = shared[fingerprint]
    return result


APPLIED_STATE_TRIGGERS = [f"schemas_applied_state_{kind}" for kind in ("insert", "update", "delete", "truncate")]


def applied_fingerprints(schema_names: list[str]) -> dict[str, tuple[int, str]]:
    """{schema: (rows, digest of its app.name list)} for every schema that has a django_migrations table.

    One catalog query for every schema: each django_migrations table with its four triggers in place and enabled
    and its row in schemas_appliedstate (migration 0005: kept by those triggers in the transaction of every write)
    takes its fingerprint from that row, without opening the table. Any other table (never adopted, a trigger
    dropped or disabled, restored by pg_dump under a new oid) is fingerprinted by reading it: the MD5 of its
    sorted rows, computed by PostgreSQL, a UNION ALL per 250 schemas. The two kinds of digest never compare equal
    (a schema read directly is a representative of its own), so the grouping stays exact either way.
    """
    public = _quote(get_public_schema_name())
    fingerprints: dict[str, tuple[int, str]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT n.nspname, s.rows, s.h1, s.h2, (SELECT count(*) FROM pg_trigger t WHERE t.tgrelid = c.oid "
            f"AND t.tgenabled IN ('O', 'A') AND t.tgname = ANY(%s)) AS triggers "
            f"FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"LEFT JOIN {public}.{_quote(AppliedState._meta.db_table)} s ON s.relid = c.oid "
            f"WHERE c.relkind IN ('r', 'p') AND {_MIGRATION_TABLES_OF}",
            [APPLIED_STATE_TRIGGERS, list(schema_names)],
        )
        direct = []
        for schema, rows, h1, h2, triggers in cursor.fetchall():
            if rows is not None and triggers == len(APPLIED_STATE_TRIGGERS):
                fingerprints[schema] = (rows, f"kept:{h1}:{h2}")
            else:
                direct.append(schema)
        direct.sort()
        for start in range(0, len(direct), _UNION_CHUNK):
            chunk = direct[start:start + _UNION_CHUNK]
            cursor.execute(" UNION ALL ".join(
                f"SELECT %s::text, count(*), coalesce(md5(string_agg(app || chr(31) || name, chr(30) "
                f"ORDER BY app, name)), '') FROM {_quote(schema)}.django_migrations" for schema in chunk), chunk)
            for schema, count, digest in cursor.fetchall():
                fingerprints[schema] = (count, f"read:{digest}")
    return fingerprints


def applied_in_order_by_schema(schema_names: list[str]) -> dict[str, list[tuple[str, str]]]:
    """{schema: [(app, name), ...]} in the order each schema applied them (django_migrations.id), oldest first."""
    result: dict[str, list[tuple[str, str]]] = {name: [] for name in schema_names}
    with_table = sorted(schemas_with_migration_table(schema_names))
    with connection.cursor() as cursor:
        for start in range(0, len(with_table), _UNION_CHUNK):
            chunk = with_table[start:start + _UNION_CHUNK]
            sql = " UNION ALL ".join(
                f"SELECT %s::text, id, app, name FROM {_quote(schema)}.django_migrations" for schema in chunk
            )
            cursor.execute(f"SELECT * FROM ({sql}) AS m ORDER BY 1, 2", chunk)
            for schema, _id, app, name in cursor.fetchall():
                result[schema].append((app, name))
    return result


def columns_by_schema(schema_names: list[str], tables: list[str]) -> dict[str, dict[str, set[str]]]:
    """{schema: {table: {column, ...}}} for the given tables, from pg_catalog, set-based.

    PostgreSQL first returns one fingerprint per schema (the MD5 of its sorted table.column list); the columns
    themselves come back for one schema per distinct fingerprint only, and schemas with equal fingerprints share
    that one (read-only) mapping: 10,000 identical schemas cost one schema's rows, not 10,000 times 60 tables'.
    """
    # pg_class is read by oid for each asked schema.table (to_regclass: one catalog-cache probe each), whatever
    # plan PostgreSQL would pick for a join: filtering the namespaces by name after a join read every schema's
    # tables of these names (a scan of pg_class, 1.5 million rows at 10,000 schemas: the matrix page's 100 schemas
    # took 2.2 s), and probing the (relname, relnamespace) index by table name with the schemas as a filter, as it
    # planned that next, still read every schema's rows of those names (8,221 for one schema at 2,500 schemas:
    # 230 ms for the page's 100, 21 ms by oid).
    catalog = ("FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
               "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
               "WHERE c.relkind IN ('r', 'p') "
               "AND c.oid = ANY(ARRAY(SELECT to_regclass(quote_ident(s) || '.' || quote_ident(t)) "
               "FROM unnest(%s::text[]) AS s, unnest(%s::text[]) AS t))")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT n.nspname, md5(string_agg(c.relname || chr(31) || a.attname, chr(30) "
            f"ORDER BY c.relname, a.attname)) {catalog} GROUP BY n.nspname",
            [list(schema_names), list(tables)],
        )
        fingerprints = dict(cursor.fetchall())
        representatives: dict[str, str] = {}
        for schema, digest in fingerprints.items():
            representatives.setdefault(digest, schema)
        cursor.execute(
            f"SELECT n.nspname, c.relname, array_agg(a.attname::text) {catalog} GROUP BY n.nspname, c.relname",
            [sorted(representatives.values()), list(tables)],
        )
        shapes: dict[str, dict[str, set[str]]] = defaultdict(dict)
        for schema, table, columns in cursor.fetchall():
            shapes[schema][table] = set(columns)
    result: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for schema, digest in fingerprints.items():
        result[schema] = shapes[representatives[digest]]
    return result



def recorded_checksums(schemas: list[str] | None = None) -> dict[tuple[str, str, str], list[str]]:
    """{(app, name, checksum): [schema, ...]} for every migration the ledger holds as applied (in `schemas`
    only, when given: a page of the matrix reads its own schemas' rows, not the whole ledger's)."""
    only = " AND schema_name = ANY(%s)" if schemas is not None else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT app_label, name, checksum, array_agg(DISTINCT schema_name ORDER BY schema_name) "
            f"FROM {_quote(MigrationRecord._meta.db_table)} WHERE outcome = %s AND checksum <> ''{only} "
            f"GROUP BY app_label, name, checksum",
            [MigrationRecord.Outcome.APPLIED, *([list(schemas)] if schemas is not None else [])],
        )
        return {(app, name, checksum): list(schemas) for app, name, checksum, schemas in cursor.fetchall()}


def ledger_checksum_mismatches(*, current: dict[tuple[str, str], str],
                               schemas: list[str] | None = None) -> dict[tuple[str, str, str], list[str]]:
    """{(app, name, recorded checksum): [schema, ...]} of the applied ledger rows whose checksum differs from
    `current` ({(app, name): checksum of the file today}), compared in PostgreSQL: the rows that match (all of
    them, in a database without drift) never leave it. Rows of migrations not in `current` and rows without a
    checksum are not compared. In `schemas` only, when given."""
    only = " AND r.schema_name = ANY(%s)" if schemas is not None else ""
    keys = sorted(current)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT r.app_label, r.name, r.checksum, array_agg(DISTINCT r.schema_name ORDER BY r.schema_name) "
            f"FROM {_quote(MigrationRecord._meta.db_table)} r "
            f"JOIN unnest(%s::text[], %s::text[], %s::text[]) AS c(app, name, checksum) "
            f"ON c.app = r.app_label AND c.name = r.name "
            f"WHERE r.outcome = %s AND r.checksum <> '' AND r.checksum <> c.checksum{only} "
            f"GROUP BY r.app_label, r.name, r.checksum",
            [[a for a, _ in keys], [n for _, n in keys], [current[k] for k in keys],
             MigrationRecord.Outcome.APPLIED, *([list(schemas)] if schemas is not None else [])],
        )
        return {(app, name, checksum): list(names) for app, name, checksum, names in cursor.fetchall()}


def schema_history(*, schema_name: str) -> QuerySet[MigrationRecord]:
    return MigrationRecord.objects.filter(schema_name=schema_name).order_by("-applied_at", "-id")


def records_applied(*, schema_name: str, app_label: str, name: str) -> QuerySet[MigrationRecord]:
    return MigrationRecord.objects.filter(
        schema_name=schema_name, app_label=app_label, name=name, outcome=MigrationRecord.Outcome.APPLIED
    )


def rollout_latest_resumable() -> Rollout | None:
    """The most recent rollout that did not finish everything it set out to do."""
    return (
        Rollout.objects.exclude(status=Rollout.Status.SUCCEEDED).order_by("-started_at", "-id").first()
    )


def _is_spare(schema_name: str) -> bool:
    prefixes = spare_prefixes()
    return bool(prefixes) and schema_name.startswith(prefixes)


LEDGER_SUMMARY_SECONDS = 30


_TYPES: dict = {}


def migration_types() -> dict[tuple[str, str], str]:
    """{(app, name): schema|data|hybrid} of every migration on disk, reloaded when a migration file changes."""
    key = migration_files_key()
    if _TYPES.get("key") != key:
        graph = load_graph()
        _TYPES.update(key=key, types={k: graph.type_of(k) for k in graph.nodes})
    return _TYPES["types"]


def migration_files_key() -> tuple:
    """Names, sizes and modification times of every app's migration files (and SQL sources): stats, no reads."""
    entries = []
    for config in django_apps.get_app_configs():
        folder = Path(config.path) / "migrations"
        if folder.is_dir():
            for path in folder.iterdir():
                if path.suffix in (".py", ".sql"):
                    stat = path.stat()
                    entries.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(entries))


def ledger_version() -> tuple:
    """What changes whenever the summary can: the newest ledger row, the tenants, the files. Index reads only."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT max(id) FROM {_quote(MigrationRecord._meta.db_table)}), "
            f"(SELECT max(applied_at) FROM {_quote(MigrationRecord._meta.db_table)}), "
            f"(SELECT count(*) FROM {_quote(get_tenant_model()._meta.db_table)}), "
            f"(SELECT max(id) FROM {_quote(get_tenant_model()._meta.db_table)})")
        return tuple(str(value) for value in cursor.fetchone())


def ledger_summary_cache_key() -> str:
    """The cache key of the summary as the ledger, the tenants and the files are now (a bench deletes it to time
    the page uncached)."""
    return "schemas:ledger-summary:" + hashlib.sha256(
        repr((ledger_version(), migration_files_key())).encode()).hexdigest()[:32]


def ledger_summary_cached() -> dict:
    """`ledger_summary()`, recomputed when the ledger, the tenants or the migration files change, or after
    LEDGER_SUMMARY_SECONDS (an undo marks rows without adding one). Its `computed_at` says how fresh it is."""
    key = ledger_summary_cache_key()
    summary = cache.get(key)
    if summary is None:
        summary = {**ledger_summary(), "computed_at": timezone.now()}
        cache.set(key, summary, LEDGER_SUMMARY_SECONDS)
    return summary


def ledger_summary(*, graph=None) -> dict:
    """Tenant schemas, and how many lack each tenant migration or hold a changed one, from the ledger alone.

    One statement whose cost follows the number of distinct ledger states, not the number of schemas: the
    tenants are grouped by their row in schemas_ledgerstate (applied rows and a digest of them, kept by
    PostgreSQL's triggers on the ledger, migration 0004), and the ledger rows of one schema per group (its
    first by name) are compared with the graph and the checksums of the files on disk, each counted as many
    times as its group has schemas. 10,000 schemas in two states read two schemas' rows (the index on
    schema_name), not 560,000. A tenant without ledger rows is a group of its own that holds nothing. Spare
    schemas are not tenants, so they are left out. `drift_report` reads each schema's own django_migrations
    instead: this is the summary, that the detail. `states` says how many distinct states there were.
    """
    graph = graph or load_graph()
    tenant_apps = set(apps_for("__tenant__"))
    expected = [key for key in graph.ordered if key[0] in tenant_apps]
    checksums = [graph.checksum(key) for key in expected]
    tenants = get_tenant_model()._meta.db_table
    ledger = MigrationRecord._meta.db_table
    state = LedgerState._meta.db_table
    params = [get_public_schema_name(), [a for a, _ in expected], [n for _, n in expected], checksums,
              len(expected)]
    # groups: one row per distinct state of the tenants (n schemas, the first three by name); per: the
    # representative's applied rows of expected migrations, each marked bad when its checksum changed (a lateral
    # subquery with OFFSET 0 is not pulled up into a join: one index lookup per group, never a hash join over the
    # whole ledger, whatever the planner guesses of the number of groups). Then per
    # migration (schemas holding it, holding a changed one, examples), per schema (current, drifted) and the
    # totals, each weighted by n, in one statement: one snapshot for every figure.
    rows_sql = (
        f"WITH groups AS (SELECT count(*) AS n, min(t.schema_name) AS rep, "
        f"(array_agg(t.schema_name::text ORDER BY t.schema_name))[1:3] AS examples "
        f"FROM {_quote(tenants)} t LEFT JOIN {_quote(state)} s ON s.schema_name = t.schema_name "
        f"WHERE t.schema_name <> %s GROUP BY coalesce(s.rows, 0), coalesce(s.h1, 0), coalesce(s.h2, 0)), "
        f"per AS (SELECT r.app_label, r.name, g.rep, g.n, g.examples, "
        f"(r.checksum <> '' AND r.checksum <> c.checksum) AS bad FROM groups g "
        f"CROSS JOIN LATERAL (SELECT app_label, name, checksum FROM {_quote(ledger)} "
        f"WHERE schema_name = g.rep AND outcome = 'applied' OFFSET 0) AS r "
        f"JOIN unnest(%s::text[], %s::text[], %s::text[]) AS c(app, name, checksum) "
        f"ON c.app = r.app_label AND c.name = r.name) "
        f"SELECT app_label, name, sum(n), coalesce(sum(n) FILTER (WHERE bad), 0), "
        f"string_agg(array_to_string(examples, chr(31)), chr(31) ORDER BY rep) FILTER (WHERE bad) "
        f"FROM per GROUP BY app_label, name "
        f"UNION ALL SELECT NULL, 'schemas', coalesce(sum(n) FILTER (WHERE held = %s AND changed = 0), 0), "
        f"coalesce(sum(n) FILTER (WHERE changed > 0), 0), NULL FROM (SELECT rep, n, count(*) AS held, "
        f"count(*) FILTER (WHERE bad) AS changed FROM per GROUP BY rep, n) AS schemas "
        f"UNION ALL SELECT NULL, 'groups', coalesce(sum(n), 0), count(*), NULL FROM groups"
    )
    with connection.cursor() as cursor:
        cursor.execute(rows_sql, params)
        rows, current, drifted, schema_total, states = {}, 0, 0, 0, 0
        for app, name, applied, changed_count, examples in cursor.fetchall():
            if app is None and name == "schemas":
                current, drifted = int(applied), int(changed_count)
            elif app is None:
                schema_total, states = int(applied), int(changed_count)
            else:
                rows[(app, name)] = (int(applied), int(changed_count),
                                     examples.split(chr(31))[:3] if examples else None)
        changed = [{"app": app, "name": name, "schemas": rows[(app, name)][1], "examples": rows[(app, name)][2]}
                   for app, name in expected if rows.get((app, name), (0, 0))[1]]
    pending = [{"app": app, "name": name, "schemas": schema_total - rows.get((app, name), (0,))[0],
                "type": graph.type_of((app, name))}
               for app, name in expected if schema_total - rows.get((app, name), (0,))[0] > 0]
    for entry in changed:
        entry["type"] = graph.type_of((entry["app"], entry["name"]))
    return {
        "schemas": schema_total,
        "states": states,
        "current": current,
        "pending": pending,
        "pending_schemas": max((p["schemas"] for p in pending), default=0),
        "changed": changed,
        "drifted_schemas": drifted,
        "latest": {app: name for app, name in graph.latest_by_app().items() if app in tenant_apps},
    }
