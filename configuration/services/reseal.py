"""Encryption at rest of stored secrets: counts, and re-encryption with the newest key (rotation)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q, TextField
from django.db.models.functions import Cast

from configuration import sealing, selectors
from configuration.layers import PUBLIC
from configuration.masking import holds_secret
from configuration.models import ConfigChange, ConfigEntry
from configuration.store import store


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
    annotations = {f"raw_{field}": Cast(field, output_field=TextField()) for field in fields}
    for row in queryset.annotate(**annotations).values("pk", "key", "secret", *annotations):
        for field in fields:
            raw = row.pop(f"raw_{field}")
            row[field] = None if raw is None else json.loads(raw)
        yield row


def _declared_secret_keys() -> frozenset:
    """Keys schemas or operator entries mark secret, read without decrypting any value (a wrong key set still works)."""
    declared = {key for key, spec in store.schemas().items() if spec.get("secret")}
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
    if not keys:
        _reseal_check_secrets(counts)
    return counts


def _reseal_check_secrets(counts: ResealCounts) -> None:
    """The registry's check secrets (HealthCheck.secret, a DSN sealed with these keys) re-encrypted too."""
    from django.apps import apps

    check_model = apps.get_model("services", "HealthCheck")
    ids = list(check_model.objects.filter(secret__isnull=False).order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), RESEAL_BATCH):
        with transaction.atomic():
            locked = check_model.objects.select_for_update().filter(pk__in=ids[start:start + RESEAL_BATCH])
            for pk, stored in locked.order_by("pk").values_list("pk", "secret"):
                if not sealing.is_sealed(stored) or sealing.sealed_with_newest(stored):
                    counts.current += sealing.is_sealed(stored)
                elif not sealing.opens(stored):
                    counts.unreadable += 1
                else:
                    counts.rotated += 1
                    check_model.objects.filter(pk=pk).update(secret=sealing.reseal(stored))
