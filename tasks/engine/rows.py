"""New TaskRun rows written fast: one prepared INSERT, or one COPY for a batch (the ORM's compiler skipped)."""

from __future__ import annotations

import functools
import operator

from django.db import models
from django.utils import timezone

from core.db import prepared_cursor
from tasks.engine.sql import public_table

_insert_statements: dict[tuple[type, str], tuple[str, list]] = {}


def insert_sql(run, alias: str) -> tuple[str, list]:
    """The INSERT of a new TaskRun (defaults, auto_now) with the table named in full, and its parameters.

    The statement depends only on the model, so it is built once; Django's SQL
    compiler took a third of a submission's Python time. So is how each value
    is prepared: Django's per-field get_db_prep_save took another sixth, and on
    PostgreSQL it hands psycopg most values unchanged (strings, floats,
    booleans, UUIDs, aware datetimes) and integers typed as their column. The
    fields it does more for (JSON, the auto_now times it stamps, a foreign key
    to a UUID) keep Django's own code. tests/tasks/test_services.py reads a
    row written so back and compares it with the run task_submit returned.
    """
    from django.db import connections

    model = run.__class__
    cached = _insert_statements.get((model, alias))
    if cached is None:
        connection = connections[alias]
        fields = [f for f in model._meta.local_concrete_fields if not f.generated]
        quote = connection.ops.quote_name
        statement = (f"INSERT INTO {public_table(model)} ({', '.join(quote(f.column) for f in fields)}) "
                     f"VALUES ({', '.join(['%s'] * len(fields))})")
        passthrough = (models.CharField, models.TextField, models.FloatField, models.BooleanField, models.UUIDField)
        preparers = []
        for field in fields:
            if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
                preparers.append(functools.partial(_prepare_by_field, field, connection))
            elif isinstance(field, models.IntegerField) or (
                    isinstance(field, models.ForeignKey) and isinstance(field.target_field, models.IntegerField)):
                # Typed as the column (Django's Int2/Int4/Int8), so a prepared INSERT keeps one plan.
                column_field = field.target_field if isinstance(field, models.ForeignKey) else field
                preparers.append(functools.partial(_prepare_integer, field.attname, column_field.get_internal_type(),
                                                   connection))
            elif isinstance(field, passthrough) and not isinstance(field, models.JSONField):
                preparers.append(operator.attrgetter(field.attname))
            elif isinstance(field, models.DateTimeField):
                preparers.append(functools.partial(_prepare_datetime, field))
            else:
                preparers.append(functools.partial(_prepare_by_field, field, connection))
        cached = _insert_statements[(model, alias)] = (statement, preparers)
    statement, preparers = cached
    return statement, [prepare(run) for prepare in preparers]


def _prepare_by_field(field, connection, run):
    return field.get_db_prep_save(field.pre_save(run, True), connection=connection)


def _prepare_integer(attname, internal_type, connection, run):
    value = getattr(run, attname)
    if value is None or internal_type not in connection.ops.integerfield_type_map:
        return value  # as Django passes an auto field's value (a foreign key to one)
    return connection.ops.adapt_integerfield_value(int(value), internal_type)


def _prepare_datetime(field, run):
    value = getattr(run, field.attname)
    if value is not None and timezone.is_naive(value):
        raise ValueError(f"{field.name} must be an aware datetime.")
    return value


def insert_run_row(run, alias: str = "default") -> None:
    """Insert a new TaskRun in one round trip (no SET search_path first), planned once per connection."""
    statement, params = insert_sql(run, alias)
    with prepared_cursor(alias) as cursor:
        cursor.execute(statement, params, prepare=True)


def insert_run_rows(runs: list, alias: str = "default") -> None:
    """Insert many new TaskRuns with one COPY (a batch submission), values prepared as for one.

    A multi-row INSERT of 1,200 runs spent a second being split and parsed (43,000 placeholders); COPY
    sends the rows as data. Row triggers fire for COPY as for INSERT.
    """
    if not runs:
        return
    from django.db import connections

    statement, _params = insert_sql(runs[0], alias)
    columns = statement[statement.index("(") + 1:statement.index(")")]
    connection = connections[alias]
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY {public_table(runs[0].__class__)} ({columns}) FROM STDIN") as copy:
            for run in runs:
                copy.write_row(insert_sql(run, alias)[1])
    for run in runs:
        run._state.adding = False
