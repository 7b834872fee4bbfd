"""Reads of the configuration tables."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from configuration.models import ConfigChange, ConfigEntry, ConfigSchema


def entry_rows(*, scope: str) -> list[tuple[str, object, bool]]:
    """(key, value, is_tenant) of the database layer and the scope's tenant layer."""
    rows = ConfigEntry.objects.filter(Q(tenant__isnull=True) | Q(tenant__schema_name=scope))
    values = rows.values_list("key", "value", "tenant_id")
    return [(key, value, tenant_id is not None) for key, value, tenant_id in values]


def secret_entry_keys(*, scope: str) -> list[str]:
    return list(
        ConfigEntry.objects.filter(Q(tenant__isnull=True) | Q(tenant__schema_name=scope), secret=True)
        .values_list("key", flat=True)
    )


def schema_specs() -> dict:
    return {
        row.key: {"schema": row.schema, "secret": row.secret, "tenant_editable": row.tenant_editable,
                  "description": row.description, "origin": "database"}
        for row in ConfigSchema.objects.all()
    }


def entry_list(*, tenant=None, operator_layer_only: bool = False) -> QuerySet[ConfigEntry]:
    entries = ConfigEntry.objects.select_related("tenant")
    if operator_layer_only:
        return entries.filter(tenant__isnull=True)
    if tenant is not None:
        return entries.filter(tenant=tenant)
    return entries


def entry_exists(*, key: str, schema_name: str | None = None) -> bool:
    if schema_name is None:
        return ConfigEntry.objects.filter(key=key, tenant__isnull=True).exists()
    return ConfigEntry.objects.filter(key=key, tenant__schema_name=schema_name).exists()


def tenant_overrides(*, tenant) -> QuerySet[ConfigEntry]:
    """Only this tenant's rows: what its admin and its API may see."""
    return ConfigEntry.objects.filter(tenant=tenant).select_related("tenant")


def change_list(*, key: str | None = None, tenant=None) -> QuerySet[ConfigChange]:
    changes = ConfigChange.objects.select_related("tenant")
    if key is not None:
        changes = changes.filter(key=key)
    if tenant is not None:
        changes = changes.filter(tenant=tenant)
    return changes

