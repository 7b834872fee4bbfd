"""Reads of the ledger and of every schema's applied migrations, each in one SQL pass."""

from __future__ import annotations

from collections import defaultdict

from django.db import connection
from django.db.models import QuerySet

from schemas.models import MigrationRecord, Rollout

# UNION ALL branches per statement: one round-trip per 500 schemas keeps the
# statement small enough to plan quickly (1,000 schemas: 2 statements).
_UNION_CHUNK = 500


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def tenant_schema_names() -> list[str]:
    """Every tenant schema known to the tenants table, public excluded, in a stable order."""
    from django_tenants.utils import get_public_schema_name, get_tenant_model

    return list(
        get_tenant_model().objects.exclude(schema_name=get_public_schema_name())
        .order_by("schema_name").values_list("schema_name", flat=True)
    )


def schemas_with_migration_table(schema_names: list[str]) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'django_migrations' AND c.relkind IN ('r', 'p') AND n.nspname = ANY(%s)",
            [list(schema_names)],
        )
        return {row[0] for row in cursor.fetchall()}


def existing_schemas(schema_names: list[str]) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [list(schema_names)])
        return {row[0] for row in cursor.fetchall()}


def applied_migrations_by_schema(schema_names: list[str]) -> dict[str, set[tuple[str, str]]]:
    """{schema: {(app, name), ...}} read from every schema's django_migrations in a few statements.

    A schema without a django_migrations table maps to an empty set. This is
    what makes a no-op check over 1,000 schemas take well under a second
    instead of one migrate command (and one graph load) per schema.
    """
    result: dict[str, set[tuple[str, str]]] = {name: set() for name in schema_names}
    with_table = sorted(schemas_with_migration_table(schema_names))
    with connection.cursor() as cursor:
        for start in range(0, len(with_table), _UNION_CHUNK):
            chunk = with_table[start:start + _UNION_CHUNK]
            sql = " UNION ALL ".join(
                f"SELECT %s::text, app, name FROM {_quote(schema)}.django_migrations" for schema in chunk
            )
            cursor.execute(sql, chunk)
            for schema, app, name in cursor.fetchall():
                result[schema].add((app, name))
    return result


def columns_by_schema(schema_names: list[str], tables: list[str]) -> dict[str, dict[str, set[str]]]:
    """{schema: {table: {column, ...}}} for the given tables, straight from pg_catalog in one statement."""
    result: dict[str, dict[str, set[str]]] = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, c.relname, array_agg(a.attname::text) "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(%s) AND c.relname = ANY(%s) "
            "GROUP BY n.nspname, c.relname",
            [list(schema_names), list(tables)],
        )
        for schema, table, columns in cursor.fetchall():
            result[schema][table] = set(columns)
    return result


def recorded_checksums() -> dict[tuple[str, str, str], list[str]]:
    """{(app, name, checksum): [schema, ...]} for every migration the ledger holds as applied."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT app_label, name, checksum, array_agg(DISTINCT schema_name ORDER BY schema_name) "
            f"FROM {_quote(MigrationRecord._meta.db_table)} WHERE outcome = %s AND checksum <> '' "
            f"GROUP BY app_label, name, checksum",
            [MigrationRecord.Outcome.APPLIED],
        )
        return {(app, name, checksum): list(schemas) for app, name, checksum, schemas in cursor.fetchall()}


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
