"""Every write to the configuration: validated first, all-or-nothing, with history and a NOTIFY."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max

from backoffice.logging import MASK
from configuration import layers, validation
from configuration.conf import DELETE, NOTIFY_CHANNEL, PUBLIC, config
from configuration.masking import mask
from configuration.models import ConfigChange, ConfigEntry, ConfigSchema, key_validator


def actor(user, *, schema_name: str = PUBLIC) -> str:
    """How history names a person: operator users plainly, tenant users with their schema."""
    name = getattr(user, "get_username", lambda: str(user))() if user is not None else "anonymous"
    return name if schema_name == PUBLIC else f"{schema_name}:{name}"


def _tenant(tenant):
    """A Tenant from a Tenant, a schema name or None (the database layer)."""
    if tenant is None or tenant == "":
        return None
    from tenants.models import Tenant

    if isinstance(tenant, str):
        found = Tenant.objects.filter(schema_name=tenant).first()
        if found is None:
            raise ValidationError({"tenant": [f"No tenant with schema {tenant!r}."]})
        tenant = found
    if tenant.schema_name == PUBLIC:
        raise ValidationError({"tenant": ["The public schema has no tenant layer: leave the tenant empty."]})
    return tenant


def _check_key(key: str) -> None:
    try:
        key_validator(key)
    except ValidationError as exc:
        raise ValidationError({"key": [f"{key!r}: {message}" for message in exc.messages]}) from exc


def _check_tenant_policy(key: str, tenant, tenant_admin: bool) -> None:
    if tenant_admin and not config.tenant_editable(key):
        raise ValidationError(
            {"key": [f"{key}: the operator does not allow tenants to override this key (rule: tenant_editable)."]}
        )


def _scope_and_layer(tenant) -> tuple[str, str]:
    return (tenant.schema_name, "tenant") if tenant is not None else (PUBLIC, "database")


def _validate(*, tenant, changes: dict) -> None:
    scope, layer = _scope_and_layer(tenant)
    errors = config.candidate_errors(scope=scope, layer=layer, changes=changes)
    if errors:
        # The message names the key and the rule; the previous value stays live.
        raise ValidationError({"value": errors})


def _next_version(key: str, tenant) -> int:
    latest = ConfigChange.objects.filter(key=key, tenant=tenant).aggregate(latest=Max("version"))["latest"]
    return (latest or 0) + 1


def _notify(key: str, tenant) -> None:
    payload = json.dumps({"key": key, "tenant": tenant.schema_name if tenant is not None else None})
    with connection.cursor() as cursor:
        # Delivered by PostgreSQL at commit, never for a rolled-back change.
        cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, payload])
    config.note_local_write()


def _write(*, entry, key, value, tenant, secret, changed_by, source, action) -> ConfigEntry:
    existed = entry is not None
    old_value = entry.value if existed else None
    if entry is None:
        entry = ConfigEntry(key=key, tenant=tenant)
    entry.value = value
    if secret is not None:
        entry.secret = secret
    entry.version = _next_version(key, tenant)
    entry.updated_by = changed_by
    entry.full_clean()
    entry.save()
    ConfigChange.objects.create(
        key=key, tenant=tenant, version=entry.version, action=action, old_value=old_value, new_value=value,
        existed_before=existed, exists_after=True, secret=entry.secret or config.is_secret(key),
        changed_by=changed_by, source=source,
    )
    _notify(key, tenant)
    return entry


def entry_check(*, key: str, value, tenant=None, tenant_admin: bool = False) -> None:
    """Raise the ValidationError entry_set would raise, writing nothing (forms call it in clean())."""
    tenant = _tenant(tenant)
    _check_key(key)
    _check_tenant_policy(key, tenant, tenant_admin)
    _validate(tenant=tenant, changes={key: value})


def entry_set(*, key: str, value, tenant=None, secret: bool | None = None, changed_by: str = "",
              source: str = "code", action: str = ConfigChange.Action.SET, tenant_admin: bool = False) -> ConfigEntry:
    """Set a key in the database layer (no tenant) or in a tenant's layer; refused whole when invalid.

    A secret's masked placeholder ("********", what every surface shows) keeps
    the stored value, so a form or an export sent back never overwrites it.
    """
    tenant = _tenant(tenant)
    _check_key(key)
    _check_tenant_policy(key, tenant, tenant_admin)
    with transaction.atomic():
        entry = ConfigEntry.objects.select_for_update().filter(key=key, tenant=tenant).first()
        if value == MASK and entry is not None and (entry.secret or config.is_secret(key)):
            value = entry.value
        if entry is not None and entry.value == value and (secret is None or secret == entry.secret):
            return entry  # nothing changes: no version, no history row, no reload
        _validate(tenant=tenant, changes={key: value})
        return _write(entry=entry, key=key, value=value, tenant=tenant, secret=secret, changed_by=changed_by,
                      source=source, action=action)


def entry_delete(*, key: str, tenant=None, changed_by: str = "", source: str = "code",
                 action: str = ConfigChange.Action.DELETE, tenant_admin: bool = False) -> None:
    """Remove an entry: the lower layers' value shows again."""
    tenant = _tenant(tenant)
    _check_tenant_policy(key, tenant, tenant_admin)
    with transaction.atomic():
        entry = ConfigEntry.objects.select_for_update().filter(key=key, tenant=tenant).first()
        if entry is None:
            raise ValidationError({"key": [f"{key}: no entry in this layer."]})
        _validate(tenant=tenant, changes={key: DELETE})
        ConfigChange.objects.create(
            key=key, tenant=tenant, version=_next_version(key, tenant), action=action, old_value=entry.value,
            new_value=None, existed_before=True, exists_after=False,
            secret=entry.secret or config.is_secret(key), changed_by=changed_by, source=source,
        )
        entry.delete()
        _notify(key, tenant)


def entry_rollback(*, change_id: int, changed_by: str = "", source: str = "admin") -> ConfigEntry | None:
    """Restore the entry as it was right after an earlier change (its value, or its absence)."""
    change = ConfigChange.objects.select_related("tenant").filter(pk=change_id).first()
    if change is None:
        raise ValidationError(f"No configuration change with id {change_id}.")
    with transaction.atomic():
        entry = ConfigEntry.objects.select_for_update().filter(key=change.key, tenant=change.tenant).first()
        if not change.exists_after:
            if entry is None:
                return None
            entry_delete(key=change.key, tenant=change.tenant, changed_by=changed_by, source=source,
                         action=ConfigChange.Action.ROLLBACK)
            return None
        if entry is not None and entry.value == change.new_value:
            return entry
        _validate(tenant=change.tenant, changes={change.key: change.new_value})
        return _write(entry=entry, key=change.key, value=change.new_value, tenant=change.tenant,
                      secret=change.secret if entry is None else None, changed_by=changed_by, source=source,
                      action=ConfigChange.Action.ROLLBACK)


def schema_check(*, key: str, schema) -> None:
    """Refuse a schema that is not a JSON Schema, or that today's operator view would break."""
    _check_key(key)
    errors = validation.schema_errors(schema)
    if errors:
        raise ValidationError({"schema": errors})
    errors = validation.validate_tree(config.as_dict(tenant=PUBLIC), {key: {"schema": schema}})
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
        _notify(key, None)
    return row


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
    tenant = _tenant(tenant)
    scope, _ = _scope_and_layer(tenant)
    incoming = layers.leaves(data)
    for key in incoming:
        _check_key(key)
    snapshot = config.snapshot(scope)
    rows, changes = [], {}
    for key, value in sorted(incoming.items()):
        current = snapshot.flat.get(key, layers._MISSING)
        secret = config.is_secret(key, tenant=scope)
        if value == MASK and secret:
            rows.append(DiffRow(key, "kept", MASK, MASK))
        elif current is layers._MISSING:
            rows.append(DiffRow(key, "added", None, mask(key, value, snapshot.secret_keys)))
            changes[key] = value
        elif current != value:
            rows.append(DiffRow(key, "changed", mask(key, current, snapshot.secret_keys),
                                mask(key, value, snapshot.secret_keys)))
            changes[key] = value
        else:
            rows.append(DiffRow(key, "unchanged", None, None))
    with transaction.atomic():
        _validate(tenant=tenant, changes=changes)
        if dry_run:
            return rows
        existing = {e.key: e for e in ConfigEntry.objects.select_for_update().filter(key__in=changes, tenant=tenant)}
        for key, value in changes.items():
            _write(entry=existing.get(key), key=key, value=value, tenant=tenant, secret=None, changed_by=changed_by,
                   source="import", action=ConfigChange.Action.IMPORT)
    return rows
