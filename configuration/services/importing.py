"""config_import: a nested mapping written as entries of one layer, all or nothing, diff first."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction

from configuration import layers
from configuration.masking import NOTHING_STORED, mask, unmask
from configuration.models import ConfigChange, ConfigEntry
from configuration.services.writes import check_key, check_value, scope_and_layer, tenant_of, validate_changes, write
from configuration.store import store
from core.masking import MASK


@dataclass(frozen=True)
class DiffRow:
    """One key of an import plan: added, changed, unchanged or kept (a masked secret)."""

    key: str
    status: str
    old: object
    new: object

    def line(self) -> str:
        if self.status == "added":
            return f"+ {self.key}: {json.dumps(self.new)}"
        if self.status == "changed":
            return f"~ {self.key}: {json.dumps(self.old)} -> {json.dumps(self.new)}"
        if self.status == "kept":
            return f"= {self.key}: secret kept (the file holds the mask)"
        return f"= {self.key}: unchanged"


def config_import(*, data: dict, tenant=None, changed_by: str = "", dry_run: bool = False) -> list[DiffRow]:
    """Write a nested mapping as entries of one layer: all of it or nothing, diff first.

    Keys whose effective value already equals the file's are left alone, so
    an export of the same view imports as a no-op.
    """
    if not isinstance(data, dict):
        raise ValidationError("The file's top level must be a mapping of keys.")
    tenant = tenant_of(tenant)
    scope, _ = scope_and_layer(tenant)
    incoming = layers.leaves(data)
    for key, value in incoming.items():
        check_key(key)
        check_value(key, value)
    snapshot = store.snapshot(scope)
    rows, changes = [], {}
    for key, value in sorted(incoming.items()):
        current = snapshot.flat.get(key, layers._MISSING)
        secret = store.is_secret(key, tenant=scope)
        if value == MASK and secret and current is not layers._MISSING:
            rows.append(DiffRow(key, "kept", MASK, MASK))
            continue
        # Masks sent back inside a value (an export re-imported) keep the secret the view holds at that place.
        value = unmask(key, value, NOTHING_STORED if current is layers._MISSING else current, snapshot.secret_keys)
        if current is layers._MISSING:
            rows.append(DiffRow(key, "added", None, mask(key, value, snapshot.secret_keys)))
            changes[key] = value
        elif current != value:
            rows.append(DiffRow(key, "changed", mask(key, current, snapshot.secret_keys),
                                mask(key, value, snapshot.secret_keys)))
            changes[key] = value
        else:
            rows.append(DiffRow(key, "unchanged", None, None))
    with transaction.atomic():
        validate_changes(tenant=tenant, changes=changes)
        if dry_run:
            return rows
        existing = {e.key: e for e in ConfigEntry.objects.select_for_update().filter(key__in=changes, tenant=tenant)}
        for key, value in changes.items():
            write(entry=existing.get(key), key=key, value=value, tenant=tenant, secret=None, changed_by=changed_by,
                   source="import", action=ConfigChange.Action.IMPORT)
    return rows
