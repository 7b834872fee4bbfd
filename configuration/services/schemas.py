"""Key schemas (JSON Schema per key or namespace, secret, tenant-editable): check and set."""

from __future__ import annotations

import copy

from django.core.exceptions import ValidationError
from django.db import transaction

from configuration import validation
from configuration.layers import PUBLIC
from configuration.models import ConfigSchema
from configuration.services.reseal import secrets_reseal
from configuration.services.writes import check_key, notify
from configuration.signals import secret_keys_declared
from configuration.store import store


def schema_check(*, key: str, schema) -> None:
    """Refuse a schema that is not a JSON Schema, or that today's operator view would break."""
    check_key(key)
    errors = validation.schema_errors(schema)
    if errors:
        raise ValidationError({"schema": errors})
    errors = validation.validate_tree(copy.deepcopy(store.snapshot(PUBLIC).tree), {key: {"schema": schema}})
    if errors:
        raise ValidationError({"schema": [f"the current value does not satisfy it: {e}" for e in errors]})


def schema_set(*, key: str, schema: dict, secret: bool = False, tenant_editable: bool = False,
               description: str = "") -> ConfigSchema:
    """Add or replace the JSON Schema of a key or namespace; refused when today's value would break it."""
    with transaction.atomic():
        schema_check(key=key, schema=schema)
        row = ConfigSchema.objects.select_for_update().filter(key=key).first() or ConfigSchema(key=key)
        row.schema, row.secret, row.tenant_editable, row.description = schema, secret, tenant_editable, description
        row.full_clean()
        row.save()
        notify(key, None)
        if secret:
            # Values stored in clear before the key became secret are encrypted now, in the same transaction,
            # and other stores of history (the audit log) redact theirs.
            secrets_reseal(keys=[key])
            secret_keys_declared.send(sender=ConfigSchema, keys=[key])
    return row
