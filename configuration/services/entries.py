"""Entries of the database and tenant layers: check, set, delete, roll back."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from configuration.layers import DELETE
from configuration.masking import is_secret
from configuration.models import ConfigChange, ConfigEntry
from configuration.services.writes import (
    check_key,
    check_tenant_policy,
    check_value,
    kept_secrets,
    next_version,
    notify,
    record_change,
    secret_keys_of,
    tenant_of,
    validate_changes,
    write,
)


def entry_check(*, key: str, value, tenant=None, tenant_admin: bool = False) -> None:
    """Raise the ValidationError entry_set would raise, writing nothing (forms call it in clean())."""
    tenant = tenant_of(tenant)
    check_key(key)
    check_value(key, value)
    check_tenant_policy(key, tenant, tenant_admin)
    entry = ConfigEntry.objects.filter(key=key, tenant=tenant).first()
    value = kept_secrets(key, value, entry, None)
    validate_changes(tenant=tenant, changes={key: value})


def entry_set(*, key: str, value, tenant=None, secret: bool | None = None, changed_by: str = "",
              source: str = "code", action: str = ConfigChange.Action.SET, tenant_admin: bool = False) -> ConfigEntry:
    """Set a key in the database layer (no tenant) or in a tenant's layer; refused whole when invalid.

    A secret's masked placeholder ("********", what every surface shows) keeps
    the stored value at that place (the whole value, a dict key, a list
    position), so a form or an export sent back never overwrites it. Secret
    values are stored encrypted.
    """
    tenant = tenant_of(tenant)
    check_key(key)
    check_value(key, value)
    check_tenant_policy(key, tenant, tenant_admin)
    with transaction.atomic():
        entry = ConfigEntry.objects.select_for_update().filter(key=key, tenant=tenant).first()
        value = kept_secrets(key, value, entry, secret)
        if entry is not None and entry.value == value and (secret is None or secret == entry.secret):
            return entry  # nothing changes: no version, no history row, no reload
        validate_changes(tenant=tenant, changes={key: value})
        return write(entry=entry, key=key, value=value, tenant=tenant, secret=secret, changed_by=changed_by,
                      source=source, action=action)


def entry_delete(*, key: str, tenant=None, changed_by: str = "", source: str = "code",
                 action: str = ConfigChange.Action.DELETE, tenant_admin: bool = False) -> None:
    """Remove an entry: the lower layers' value shows again."""
    tenant = tenant_of(tenant)
    check_tenant_policy(key, tenant, tenant_admin)
    with transaction.atomic():
        entry = ConfigEntry.objects.select_for_update().filter(key=key, tenant=tenant).first()
        if entry is None:
            raise ValidationError({"key": [f"{key}: no entry in this layer."]})
        validate_changes(tenant=tenant, changes={key: DELETE})
        secret_keys = secret_keys_of(key, marked=False)
        record_change(
            key=key, tenant=tenant, old_value=entry.value, new_value=None, old_marked=entry.secret,
            new_marked=False, secret_keys=secret_keys, version=next_version(key, tenant), action=action,
            existed_before=True, exists_after=False, secret=entry.secret or is_secret(key, secret_keys),
            changed_by=changed_by, source=source,
        )
        entry.delete()
        notify(key, tenant)


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
        validate_changes(tenant=change.tenant, changes={change.key: change.new_value})
        return write(entry=entry, key=change.key, value=change.new_value, tenant=change.tenant,
                      secret=change.secret if entry is None else None, changed_by=changed_by, source=source,
                      action=ConfigChange.Action.ROLLBACK)
