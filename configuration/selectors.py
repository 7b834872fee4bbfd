"""Reads of the configuration tables."""

from __future__ import annotations

from django.db.models import Q, QuerySet, Sum

from configuration.models import ConfigChange, ConfigEntry, ConfigSchema, ExperimentExposure


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


def exposure_counts(*, experiment: str | None = None) -> dict[str, dict[str, int]]:
    """{experiment: {variant: exposures}} over every tenant and day written so far."""
    rows = ExperimentExposure.objects.all()
    if experiment is not None:
        rows = rows.filter(experiment=experiment)
    counts: dict[str, dict[str, int]] = {}
    for row in rows.values("experiment", "variant").annotate(total=Sum("count")).order_by("experiment", "variant"):
        counts.setdefault(row["experiment"], {})[row["variant"]] = row["total"]
    return counts


def experiment_summaries(*, specs: dict, name: str | None = None) -> list[dict]:
    """Each experiment (defined in `specs`, the operator view's `experiments`, or only counted) with its split.

    variants: [{name, weight, weight_share, exposures, exposure_share}] sorted by name; shares in percent.
    """
    counts = exposure_counts(experiment=name)
    specs = specs if isinstance(specs, dict) else {}
    names = sorted({*specs, *counts}) if name is None else [name]
    summaries = []
    for experiment in names:
        spec = specs.get(experiment) if isinstance(specs.get(experiment), dict) else {}
        weights = spec.get("variants") or {}
        seen = counts.get(experiment, {})
        total_weight = sum(w for w in weights.values() if isinstance(w, int) and w > 0)
        total_seen = sum(seen.values())
        variants = [
            {"name": variant, "weight": weights.get(variant, 0),
             "weight_share": round(100 * weights.get(variant, 0) / total_weight, 1) if total_weight else 0.0,
             "exposures": seen.get(variant, 0),
             "exposure_share": round(100 * seen.get(variant, 0) / total_seen, 1) if total_seen else 0.0}
            for variant in sorted({*weights, *seen})
        ]
        summaries.append({
            "name": experiment, "defined": bool(spec), "enabled": bool(spec.get("enabled", False)),
            "control": spec.get("control"), "overrides": spec.get("overrides") or {}, "exposures": total_seen,
            "variants": variants,
        })
    return summaries


def changes_since(*, since) -> int:
    """Configuration changes (every layer, every tenant) recorded since `since`."""
    return ConfigChange.objects.filter(changed_at__gte=since).count()
