"""The engine's SQL: tables named in full (whatever search_path a connection was left in), templates rendered once."""

from __future__ import annotations

import functools

from tasks.models import QueueMessage, TaskAttempt, TaskRun


def public_table(model) -> str:
    """A public-schema table, schema-qualified: right whatever search_path the connection was left with."""
    from django_tenants.utils import get_public_schema_name

    return f'"{get_public_schema_name()}"."{model._meta.db_table}"'


# What the worker needs of a claimed run, in the model's field order (TaskRun.from_db takes them so).
# The dequeue's claim (courtside_claim_run, tasks.engine.claim) returns the same names as jsonb keys.
CLAIMED = ("id", "name", "arguments", "schema_name", "priority", "status", "attempts", "timeout", "tenant_id")


@functools.cache
def claimed_attnames() -> list[str]:
    return [f.attname for f in TaskRun._meta.concrete_fields if f.attname in CLAIMED]


@functools.cache
def render(template: str) -> str:
    through = TaskRun.depends_on.through
    return template.format(run=public_table(TaskRun), attempt=public_table(TaskAttempt), edges=public_table(through),
                           queue=public_table(QueueMessage), to_column=through._meta.get_field("to_taskrun").column,
                           claimed_columns=", ".join(claimed_attnames()))
