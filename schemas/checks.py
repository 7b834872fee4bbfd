"""schemas.W001-W004: drift between migration files and what every schema claims."""

from django.core import checks
from django.db import DatabaseError, connection, transaction


@checks.register("schemas", checks.Tags.database)
def migration_drift_check(app_configs=None, **kwargs):
    """Pending migrations, changed or deleted applied files, tables a schema claims but lacks.

    Tagged `database`, like Django's own checks that query the database: it
    runs on `migrate`, `check --database default` and CI, not on every
    manage.py command. Fast (a few SQL statements for all schemas: about 2 s
    for 1,000 tenant schemas on this machine) and silent when the database is
    unreachable or not migrated yet: a check must never stop manage.py.
    """
    from schemas.services import drift_report

    if connection.alias not in (kwargs.get("databases") or ()):
        return []  # Django passes the databases to check; none means "do not touch the database"
    try:
        if connection.in_atomic_block:
            with transaction.atomic():
                report = drift_report()
        else:
            report = drift_report()
    except (DatabaseError, Exception):  # noqa: B014,BLE001  unreachable, unmigrated, misconfigured: no warnings
        return []
    return drift_messages(report)


def drift_messages(report) -> list[checks.CheckMessage]:
    messages = []
    pending = [s for s in report.schemas if s.pending]
    if pending:
        names = ", ".join(s.schema for s in pending[:10]) + (" ..." if len(pending) > 10 else "")
        messages.append(checks.Warning(
            f"{len(pending)} schema(s) have unapplied migrations: {names}.",
            hint="Run `manage.py rollout` (tenants) or `manage.py migrate_schemas --shared` (public).",
            id="schemas.W001",
        ))
    for entry in report.changed_files:
        messages.append(checks.Warning(
            f"Migration {entry['app']}.{entry['name']} changed since it was applied: {entry['file']} "
            f"(schemas: {', '.join(entry['schemas'])}).",
            hint="Applied migrations must not be edited: restore the file and add a new migration instead.",
            id="schemas.W002",
        ))
    for entry in report.gone_files:
        messages.append(checks.Warning(
            f"Migration {entry['app']}.{entry['name']} is applied but its file is gone "
            f"(schemas: {', '.join(entry['schemas'])}).",
            hint="Restore the file, or reverse the migration in those schemas before deleting it.",
            id="schemas.W003",
        ))
    missing = [s for s in report.schemas if s.missing_tables or s.missing_columns or not s.exists]
    for schema in missing:
        what = (["the schema itself"] if not schema.exists else []) + schema.missing_tables + schema.missing_columns
        messages.append(checks.Warning(
            f"Schema {schema.schema} lacks {', '.join(what[:10])}{' ...' if len(what) > 10 else ''} "
            f"although django_migrations says the migrations ran.",
            hint="A stale clone or a hand-made change: re-create the objects or fake-unapply and re-run.",
            id="schemas.W004",
        ))
    return messages
