"""The migration ledger: what ran on which schema, when, by whom, with which checksum.

Below both the executor (which records as it migrates) and the rollout services, so neither imports the other
to reach it.
"""

from __future__ import annotations

import getpass
import os
from collections import defaultdict
from contextvars import ContextVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from schemas import selectors
from schemas.graph import Graph, Key, load_graph, migration_checksum
from schemas.models import MigrationRecord, Rollout

# Set while our executor records the ledger itself, so the post_migrate
# receiver (which records stock `migrate` runs) does not record twice.
recording_ledger: ContextVar[bool] = ContextVar("recording_ledger", default=False)


def now():
    return timezone.now()


def operator_name(by: str | None = None) -> str:
    """Who is running this: the operator passed in, COURTSIDE_OPERATOR, or the OS user."""
    if by:
        return by
    try:
        return os.environ.get("COURTSIDE_OPERATOR") or getpass.getuser()
    except Exception:  # noqa: BLE001  no passwd entry in some containers
        return f"uid:{os.getuid()}"


# -- ledger -------------------------------------------------------------------------------


def ledger_record(*, schema_name: str, plan: list[tuple[Key, bool]], timings: dict | None = None, by: str = "",
                  rollout_id: int | None = None, graph: Graph | None = None, started_at=None,
                  checksums: dict[Key, str] | None = None) -> None:
    """Record what a plan did to a schema: applied rows for forwards, undone marks for backwards.

    Reversing keeps the history: the applied row is marked undone instead of
    deleted, as Django deletes its django_migrations row.
    """
    if not plan:
        return
    if checksums is None:
        graph = graph or load_graph()
        checksums = {key: graph.checksum(key) for key, _ in plan}
    by = operator_name(by)
    moment = started_at or now()
    timings = timings or {}
    fallback_ms = 0
    if started_at and not timings:
        # Stock migrate only tells us when the whole plan ended: spread the time evenly.
        fallback_ms = int((now() - started_at).total_seconds() * 1000 / len(plan))
    new_rows = []
    for key, backwards in plan:
        start, end = timings.get(key, (0.0, 0.0))
        duration_ms = int((end - start) * 1000) if end else fallback_ms
        if backwards:
            undone = selectors.records_applied(schema_name=schema_name, app_label=key[0], name=key[1]).update(
                outcome=MigrationRecord.Outcome.UNDONE, undone_at=now(), undone_by=by
            )
            if not undone:  # applied before the ledger existed: keep a trace of the reversal anyway
                new_rows.append(MigrationRecord(
                    schema_name=schema_name, app_label=key[0], name=key[1], checksum=checksums.get(key, ""),
                    applied_at=moment, applied_by="", duration_ms=duration_ms, rollout_id=rollout_id,
                    outcome=MigrationRecord.Outcome.UNDONE, undone_at=now(), undone_by=by,
                ))
        else:
            new_rows.append(MigrationRecord(
                schema_name=schema_name, app_label=key[0], name=key[1], checksum=checksums.get(key, ""),
                applied_at=moment, applied_by=by, duration_ms=duration_ms, rollout_id=rollout_id,
            ))
    # A row already saying "applied" for the same schema and migration wins (schemas_record_applied_once).
    MigrationRecord.objects.bulk_create(new_rows, ignore_conflicts=True)


def ledger_baseline(*, schemas: list[str] | None = None, by: str = "", dry_run: bool = False,
                    progress=None) -> dict[str, int]:
    """Record, with today's file checksums, migrations a schema applied before the ledger existed.

    Adopting an existing database: from then on, an edit to one of those files
    is reported as drift like any other. Migrations whose file is gone cannot be
    checksummed and stay unrecorded (migration_status reports them as gone).
    Returns {schema: rows recorded (or, with dry_run, that would be)}.
    """
    graph = load_graph()
    public = settings.PUBLIC_SCHEMA_NAME
    names = list(schemas) if schemas else [public, *selectors.tenant_schema_names()]
    unknown = sorted(set(names) - selectors.existing_schemas(names))
    if unknown:
        raise ValidationError({"schemas": f"No such schema: {', '.join(unknown)}."})
    applied = selectors.applied_migrations_by_schema(names)
    recorded: dict[str, set[Key]] = defaultdict(set)
    for schema, app, name in MigrationRecord.objects.filter(
            schema_name__in=names, outcome=MigrationRecord.Outcome.APPLIED).values_list(
            "schema_name", "app_label", "name"):
        recorded[schema].add((app, name))
    by, moment, counts = f"baseline by {operator_name(by)}"[:150], now(), {}
    for schema in names:
        missing = sorted(k for k in applied[schema] - recorded[schema] if k in graph.nodes)
        counts[schema] = len(missing)
        if missing and not dry_run:
            MigrationRecord.objects.bulk_create([
                MigrationRecord(schema_name=schema, app_label=app, name=name, checksum=graph.checksum((app, name)),
                                applied_at=moment, applied_by=by, duration_ms=0)
                for app, name in missing
            ], ignore_conflicts=True)  # a concurrent recorder's row wins (schemas_record_applied_once)
        if progress is not None:
            progress(schema, len(missing))
    return counts


def ledger_record_failure(*, schema_name: str, key: Key | None, error: str, by: str = "",
                          rollout_id: int | None = None, graph: Graph | None = None, started_at=None) -> None:
    graph = graph or load_graph()
    with transaction.atomic():
        MigrationRecord.objects.create(
            schema_name=schema_name, app_label=key[0] if key else "", name=key[1] if key else "(plan)",
            checksum=graph.checksum(key) if key else "", applied_at=started_at or now(),
            applied_by=operator_name(by), outcome=MigrationRecord.Outcome.FAILED, error=error[:10000],
            duration_ms=int((now() - started_at).total_seconds() * 1000) if started_at else 0,
            rollout_id=rollout_id,
        )


def ledger_record_stock_plan(*, plan, started_at=None) -> None:
    """post_migrate receiver's work: record a plan that stock `migrate`/`migrate_schemas` ran."""
    if not plan or recording_ledger.get():
        return
    schema_name = getattr(connection, "schema_name", None) or settings.PUBLIC_SCHEMA_NAME
    keys = [((migration.app_label, migration.name), backwards) for migration, backwards in plan]
    # The plan holds the Migration objects: hash their files directly, no graph load per schema.
    checksums = {(m.app_label, m.name): migration_checksum(m) for m, _ in plan}
    try:
        with transaction.atomic():
            ledger_record(schema_name=schema_name, plan=keys, started_at=started_at, checksums=checksums)
    except DatabaseError:
        # The ledger table is not there yet (e.g. migrating a schema before public): nothing to record into.
        pass
    try:
        applied_state_adopt_one(schema_name=schema_name)  # a new schema's state kept from its first migrate on
    except DatabaseError:
        pass  # migration 0005 not applied yet: the no-op check reads this schema's table directly


def ledger_schema_rename(*, old_name: str, new_name: str) -> int:
    """Move a schema's ledger rows, and its entry in a resumable rollout, to its new name; return the rows moved.

    `ALTER SCHEMA ... RENAME` moves the tables but not the rows elsewhere that
    name the schema: call this in the transaction that renames the schema, so
    its history, its drift check and a resumable rollout follow it. Rows already
    under `new_name` belong to a dropped schema of that name (PostgreSQL cannot
    rename onto an existing schema): they are forgotten first, so they neither
    block the move (schemas_record_applied_once) nor pose as the new schema's.
    """
    if old_name == new_name:
        return 0
    # No savepoint: a sign-up runs this in its own transaction, and all of it stands or falls together.
    with transaction.atomic(savepoint=False):
        MigrationRecord.objects.filter(schema_name=new_name).delete()
        moved = MigrationRecord.objects.filter(schema_name=old_name).update(schema_name=new_name)
        # The rollout `rollout --resume` would pick up; finished ones are history, named as things were then.
        resumable = selectors.rollout_latest_resumable()
        if resumable is not None and old_name in resumable.results:
            rollout = Rollout.objects.select_for_update().get(pk=resumable.pk)
            rollout.results[new_name] = rollout.results.pop(old_name)
            rollout.save(update_fields=["results"])
    return moved


def ledger_schema_forget(*, schema_name: str) -> int:
    """Delete the ledger rows of a schema that no longer exists; return how many.

    For a spare schema dropped unused, and for the leftovers of a dropped
    schema whose name a new tenant takes: a new schema's history starts empty.
    Refused for a schema that exists, whose history this would erase.
    """
    if selectors.existing_schemas([schema_name]):
        raise ValidationError({"schema_name": f"Schema {schema_name!r} exists; its migration history stays."})
    with transaction.atomic(savepoint=False):
        deleted, _ = MigrationRecord.objects.filter(schema_name=schema_name).delete()
    return deleted


# -- the applied-migrations state of each schema's django_migrations (migration 0005) --------------------------

ADOPT_BATCH = 200  # tables per transaction: each holds one lock until commit (max_locks_per_transaction)


def applied_state_adopt(*, schema_names: list[str] | None = None) -> int:
    """Install the triggers that keep schemas_appliedstate on these schemas' django_migrations (every schema's,
    when None) and count each table under its lock; return how many tables were adopted.

    Idempotent: a table already adopted is counted again (its triggers stay). Called where a schema is migrated
    (the executor, a stock migrate's post_migrate) so a new schema's state is kept from its first migration.
    """
    public = connection.ops.quote_name(settings.PUBLIC_SCHEMA_NAME)
    with connection.cursor() as cursor:
        only = " AND n.nspname = ANY(%s)" if schema_names is not None else ""
        cursor.execute("SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       f"WHERE c.relname = 'django_migrations' AND c.relkind = 'r'{only} ORDER BY c.oid",
                       [list(schema_names)] if schema_names is not None else [])
        tables = [row[0] for row in cursor.fetchall()]
    for start in range(0, len(tables), ADOPT_BATCH):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT {public}.schemas_applied_state_adopt(t::regclass) FROM unnest(%s::oid[]) AS t",
                           [tables[start:start + ADOPT_BATCH]])
    return len(tables)


def applied_state_adopt_one(*, schema_name: str) -> None:
    """`applied_state_adopt` for one schema's django_migrations, in one statement (the executor's, per schema)."""
    public = connection.ops.quote_name(settings.PUBLIC_SCHEMA_NAME)
    table = f"{connection.ops.quote_name(schema_name)}.django_migrations"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT {public}.schemas_applied_state_adopt(%s::regclass)", [table])
