"""The one write path every configuration write goes through: checks, encryption at rest, history, NOTIFY.

Policy (secret keys, tenant-editable keys, the errors a change would cause)
is asked of the store below; nothing here imports the `config` facade.
"""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Max

from configuration import layers, sealing
from configuration.layers import PUBLIC
from configuration.listener import NOTIFY_CHANNEL
from configuration.masking import NOTHING_STORED, holds_secret, is_secret, unmask
from configuration.models import ConfigChange, ConfigEntry, key_validator
from configuration.store import store
from tenants.models import Tenant

# A value bigger than this (as JSON) is refused: entries are settings, not documents.
MAX_VALUE_BYTES = 256 * 1024


def actor(user, *, schema_name: str = PUBLIC) -> str:
    """How history names a person: operator users plainly, tenant users with their schema."""
    name = getattr(user, "get_username", lambda: str(user))() if user is not None else "anonymous"
    return name if schema_name == PUBLIC else f"{schema_name}:{name}"


def tenant_of(tenant):
    """A Tenant from a Tenant, a schema name or None (the database layer)."""
    if tenant is None or tenant == "":
        return None
    if isinstance(tenant, str):
        found = Tenant.objects.filter(schema_name=tenant).first()
        if found is None:
            raise ValidationError({"tenant": [f"No tenant with schema {tenant!r}."]})
        tenant = found
    if tenant.schema_name == PUBLIC:
        raise ValidationError({"tenant": ["The public schema has no tenant layer: leave the tenant empty."]})
    return tenant


def check_key(key: str) -> None:
    try:
        key_validator(key)
    except ValidationError as exc:
        raise ValidationError({"key": [f"{key!r}: {message}" for message in exc.messages]}) from exc


def check_value(key: str, value) -> None:
    """Bound what a client sends: nesting, size, and the envelope that marks an encrypted value."""
    try:
        layers.check_depth(value, key)
        encoded = json.dumps(value)
    except ValueError as exc:
        raise ValidationError({"value": [str(exc)]}) from exc
    except (TypeError, RecursionError):
        raise ValidationError({"value": [f"{key}: the value is not JSON (rule: type)"]}) from None
    if len(encoded) > MAX_VALUE_BYTES:
        raise ValidationError({"value": [f"{key}: the value is larger than {MAX_VALUE_BYTES} bytes as JSON."]})
    if sealing.is_sealed(value):
        raise ValidationError({"value": [f"{key}: {{\"{sealing.ENVELOPE}\": ...}} is reserved for encrypted values."]})


def secret_keys_of(key: str, *, marked: bool) -> frozenset:
    """Keys secret in the operator's view (schemas, entries marked secret), plus this key when marked."""
    keys = store.snapshot(PUBLIC).secret_keys
    return keys | {key} if marked else keys


def kept_secrets(key: str, value, entry, secret) -> object:
    """The value with each mask sent back replaced by the stored secret at that place."""
    marked = bool(secret) or (entry is not None and entry.secret)
    stored = entry.value if entry is not None else NOTHING_STORED
    return unmask(key, value, stored, secret_keys_of(key, marked=marked))


def must_seal(key: str, value, *, marked: bool, secret_keys) -> bool:
    """Encrypted at rest: secret by name, by schema, marked, or holding a secret anywhere inside."""
    return value not in (None, "") and (marked or holds_secret(key, value, secret_keys))


def record_change(*, key, tenant, old_value, new_value, old_marked: bool, new_marked: bool, secret_keys,
                   **fields) -> ConfigChange:
    change = ConfigChange(key=key, tenant=tenant, old_value=old_value, new_value=new_value, **fields)
    change.sealed_fields = frozenset(
        name for name, value, marked in (("old_value", old_value, old_marked), ("new_value", new_value, new_marked))
        if must_seal(key, value, marked=marked, secret_keys=secret_keys)
    )
    change.save(force_insert=True)
    return change


def check_tenant_policy(key: str, tenant, tenant_admin: bool) -> None:
    if tenant_admin and not store.tenant_editable(key):
        raise ValidationError(
            {"key": [f"{key}: the operator does not allow tenants to override this key (rule: tenant_editable)."]}
        )


def scope_and_layer(tenant) -> tuple[str, str]:
    return (tenant.schema_name, "tenant") if tenant is not None else (PUBLIC, "database")


def validate_changes(*, tenant, changes: dict) -> None:
    scope, layer = scope_and_layer(tenant)
    errors = store.candidate_errors(scope=scope, layer=layer, changes=changes)
    if errors:
        # The message names the key and the rule; the previous value stays live.
        raise ValidationError({"value": errors})


def next_version(key: str, tenant) -> int:
    latest = ConfigChange.objects.filter(key=key, tenant=tenant).aggregate(latest=Max("version"))["latest"]
    return (latest or 0) + 1


def notify(key: str, tenant) -> None:
    payload = json.dumps({"key": key, "tenant": tenant.schema_name if tenant is not None else None})
    with connection.cursor() as cursor:
        # Delivered by PostgreSQL at commit, never for a rolled-back change.
        cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, payload])
    store.note_local_write()


def write(*, entry, key, value, tenant, secret, changed_by, source, action) -> ConfigEntry:
    existed = entry is not None
    old_value = entry.value if existed else None
    was_marked = existed and entry.secret
    if entry is None:
        entry = ConfigEntry(key=key, tenant=tenant)
    entry.value = value
    if secret is not None:
        entry.secret = secret
    entry.version = next_version(key, tenant)
    entry.updated_by = changed_by
    entry.full_clean()
    secret_keys = secret_keys_of(key, marked=False)
    entry.sealed_fields = frozenset(
        {"value"} if must_seal(key, value, marked=entry.secret, secret_keys=secret_keys) else ())
    entry.save()
    record_change(
        key=key, tenant=tenant, old_value=old_value, new_value=value, old_marked=was_marked or entry.secret,
        new_marked=entry.secret, secret_keys=secret_keys, version=entry.version, action=action,
        existed_before=existed, exists_after=True, secret=entry.secret or is_secret(key, secret_keys),
        changed_by=changed_by, source=source,
    )
    notify(key, tenant)
    return entry
