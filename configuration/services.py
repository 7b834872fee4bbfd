"""Every write to the configuration: validated first, all-or-nothing, with history and a NOTIFY."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Max

from configuration import layers, sealing, validation
from configuration.conf import DELETE, NOTIFY_CHANNEL, PUBLIC, config
from configuration.masking import NOTHING_STORED, holds_secret, is_secret, mask, unmask
from configuration.models import ConfigChange, ConfigEntry, ConfigSchema, key_validator
from configuration.signals import secret_keys_declared
from core.masking import MASK

# A value bigger than this (as JSON) is refused: entries are settings, not documents.
MAX_VALUE_BYTES = 256 * 1024


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


def _check_value(key: str, value) -> None:
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


def _secret_keys(key: str, *, marked: bool) -> frozenset:
    """Keys secret in the operator's view (schemas, entries marked secret), plus this key when marked."""
    keys = config.snapshot(PUBLIC).secret_keys
    return keys | {key} if marked else keys


def _kept_secrets(key: str, value, entry, secret) -> object:
    """The value with each mask sent back replaced by the stored secret at that place."""
    marked = bool(secret) or (entry is not None and entry.secret)
    stored = entry.value if entry is not None else NOTHING_STORED
    return unmask(key, value, stored, _secret_keys(key, marked=marked))


def _must_seal(key: str, value, *, marked: bool, secret_keys) -> bool:
    """Encrypted at rest: secret by name, by schema, marked, or holding a secret anywhere inside."""
    return value not in (None, "") and (marked or holds_secret(key, value, secret_keys))


def _record_change(*, key, tenant, old_value, new_value, old_marked: bool, new_marked: bool, secret_keys,
                   **fields) -> ConfigChange:
    change = ConfigChange(key=key, tenant=tenant, old_value=old_value, new_value=new_value, **fields)
    change.sealed_fields = frozenset(
        name for name, value, marked in (("old_value", old_value, old_marked), ("new_value", new_value, new_marked))
        if _must_seal(key, value, marked=marked, secret_keys=secret_keys)
    )
    change.save(force_insert=True)
    return change


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
    was_marked = existed and entry.secret
    if entry is None:
        entry = ConfigEntry(key=key, tenant=tenant)
    entry.value = value
    if secret is not None:
        entry.secret = secret
    entry.version = _next_version(key, tenant)
    entry.updated_by = changed_by
    entry.full_clean()
    secret_keys = _secret_keys(key, marked=False)
    entry.sealed_fields = frozenset(
        {"value"} if _must_seal(key, value, marked=entry.secret, secret_keys=secret_keys) else ())
    entry.save()
    _record_change(
        key=key, tenant=tenant, old_value=old_value, new_value=value, old_marked=was_marked or entry.secret,
        new_marked=entry.secret, secret_keys=secret_keys, version=entry.version, action=action,
        existed_before=existed, exists_after=True, secret=entry.secret or is_secret(key, secret_keys),
        changed_by=changed_by, source=source,
    )
    _notify(key, tenant)
    return entry


def entry_check(*, key: str, value, tenant=None, tenant_admin: bool = False) -> None:
    """Raise the ValidationError entry_set would raise, writing nothing (forms call it in clean())."""
    tenant = _tenant(tenant)
    _check_key(key)
    _check_value(key, value)
    _check_tenant_policy(key, tenant, tenant_admin)
    entry = ConfigEntry.objects.filter(key=key, tenant=tenant).first()
    value = _kept_secrets(key, value, entry, None)
    _validate(tenant=tenant, changes={key: value})


def entry_set(*, key: str, value, tenant=None, secret: bool | None = None, changed_by: str = "",
              source: str = "code", action: str = ConfigChange.Action.SET, tenant_admin: bool = False) -> ConfigEntry:
    """Set a key in the database layer (no tenant) or in a tenant's layer; refused whole when invalid.

    A secret's masked placeholder ("********", what every surface shows) keeps
    the stored value at that place (the whole value, a dict key, a list
    position), so a form or an export sent back never overwrites it. Secret
    values are stored encrypted.
    """
    tenant = _tenant(tenant)
    _check_key(key)
    _check_value(key, value)
    _check_tenant_policy(key, tenant, tenant_admin)
    with transaction.atomic():
        entry = ConfigEntry.objects.select_for_update().filter(key=key, tenant=tenant).first()
        value = _kept_secrets(key, value, entry, secret)
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
        secret_keys = _secret_keys(key, marked=False)
        _record_change(
            key=key, tenant=tenant, old_value=entry.value, new_value=None, old_marked=entry.secret,
            new_marked=False, secret_keys=secret_keys, version=_next_version(key, tenant), action=action,
            existed_before=True, exists_after=False, secret=entry.secret or is_secret(key, secret_keys),
            changed_by=changed_by, source=source,
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
        if secret:
            # Values stored in clear before the key became secret are encrypted now, in the same transaction,
            # and other stores of history (the audit log) redact theirs.
            secrets_reseal(keys=[key])
            secret_keys_declared.send(sender=ConfigSchema, keys=[key])
    return row


@dataclass
class ResealCounts:
    """What secrets_reseal did: values re-encrypted with the newest key, encrypted for the first time, left."""

    rotated: int = 0
    sealed: int = 0
    current: int = 0
    plain: int = 0
    unreadable: int = 0  # no configured key opens it

    @property
    def changed(self) -> int:
        return self.rotated + self.sealed


_RESEAL_FIELDS = {ConfigEntry: ("value",), ConfigChange: ("old_value", "new_value")}
RESEAL_BATCH = 200


def _under(keys):
    """A filter on rows at or under any of the keys."""
    from django.db.models import Q

    condition = Q()
    for key in keys:
        condition |= Q(key=key) | Q(key__startswith=f"{key}.")
    return condition


def secrets_stored_counts() -> ResealCounts:
    """How the stored values stand: sealed with the newest key (current), with an older one, secret in clear."""
    counts = ResealCounts()
    secret_keys = _declared_secret_keys()
    for model, fields in _RESEAL_FIELDS.items():
        for row in _raw_rows(model, fields, model.objects.all()):
            for field in fields:
                _tally(counts, row, field, secret_keys, write=False)
    return counts


def _raw_rows(model, fields, queryset):
    """Rows with each value as stored (the envelope itself, not decrypted): annotations skip the field's reader."""
    from django.db.models import TextField
    from django.db.models.functions import Cast

    annotations = {f"raw_{field}": Cast(field, output_field=TextField()) for field in fields}
    for row in queryset.annotate(**annotations).values("pk", "key", "secret", *annotations):
        for field in fields:
            raw = row.pop(f"raw_{field}")
            row[field] = None if raw is None else json.loads(raw)
        yield row


def _declared_secret_keys() -> frozenset:
    """Keys schemas or operator entries mark secret, read without decrypting any value (a wrong key set still works)."""
    from configuration import selectors

    declared = {key for key, spec in config.schemas().items() if spec.get("secret")}
    return frozenset(declared | set(selectors.secret_entry_keys(scope=PUBLIC)))


def _tally(counts: ResealCounts, row: dict, field: str, secret_keys, *, write: bool):
    stored = row[field]
    if sealing.is_sealed(stored):
        if sealing.sealed_with_newest(stored):
            counts.current += 1
            return None
        if not sealing.opens(stored):
            counts.unreadable += 1
            return None
        counts.rotated += 1
        return sealing.reseal(stored) if write else None
    keys = secret_keys | {row["key"]} if row["secret"] else secret_keys
    if stored not in (None, "") and (row["secret"] or holds_secret(row["key"], stored, keys)):
        counts.sealed += 1
        return sealing.Sealed(stored) if write else None
    counts.plain += 1
    return None


def secrets_reseal(*, keys=None, progress=None) -> ResealCounts:
    """Re-encrypt every stored secret with the newest key, and encrypt any secret still stored in clear.

    Rows are locked batch by batch (the writers lock the entry they change), so
    a concurrent write is never overwritten with an older value. `keys`
    narrows it to rows at or under those keys; `progress(done, total)` is
    called after each batch. The plain values are unchanged: no reload needed.
    A value no configured key opens is left as it is and counted (unreadable).
    """
    counts = ResealCounts()
    secret_keys = _declared_secret_keys() | frozenset(keys or ())
    querysets = {model: model.objects.filter(_under(keys)) if keys else model.objects.all()
                 for model in _RESEAL_FIELDS}
    total = sum(queryset.count() for queryset in querysets.values())
    done = 0
    for model, fields in _RESEAL_FIELDS.items():
        ids = list(querysets[model].order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), RESEAL_BATCH):
            batch = ids[start:start + RESEAL_BATCH]
            with transaction.atomic():
                locked = model.objects.select_for_update().filter(pk__in=batch).order_by("pk")
                for row in _raw_rows(model, fields, locked):
                    updates = {}
                    for field in fields:
                        new = _tally(counts, row, field, secret_keys, write=True)
                        if new is not None:
                            updates[field] = new
                    if updates:
                        model.objects.filter(pk=row["pk"]).update(**updates)
            done += len(batch)
            if progress is not None:
                progress(done, total)
    return counts


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
    for key, value in incoming.items():
        _check_key(key)
        _check_value(key, value)
    snapshot = config.snapshot(scope)
    rows, changes = [], {}
    for key, value in sorted(incoming.items()):
        current = snapshot.flat.get(key, layers._MISSING)
        secret = config.is_secret(key, tenant=scope)
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
        _validate(tenant=tenant, changes=changes)
        if dry_run:
            return rows
        existing = {e.key: e for e in ConfigEntry.objects.select_for_update().filter(key__in=changes, tenant=tenant)}
        for key, value in changes.items():
            _write(entry=existing.get(key), key=key, value=value, tenant=tenant, secret=None, changed_by=changed_by,
                   source="import", action=ConfigChange.Action.IMPORT)
    return rows
