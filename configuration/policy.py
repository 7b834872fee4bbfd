"""What the configuration allows, read from the schemas: below the store and the services that ask.

Pure functions over the merged schemas ({key: {"schema", "secret", "tenant_editable", "description",
"origin"}}: the code's configuration/defaults/schemas.yaml, replaced per key by ConfigSchema rows).
"""

from __future__ import annotations

import json

from configuration import layers, validation


def merged_schemas(code: dict, database: dict) -> dict:
    """The code's schemas, each replaced by the operator's row for the same key."""
    schemas = {key: {**spec, "origin": "code"} for key, spec in code.items()}
    schemas.update(database)
    return schemas


def tenant_editable(schemas: dict, key: str) -> bool:
    """Tenant admins may override the key: a schema at or above it allows it."""
    parts = key.split(".")
    return any(schemas.get(".".join(parts[:i]), {}).get("tenant_editable") for i in range(1, len(parts) + 1))


def secret_keys(schemas: dict, marked_entries) -> frozenset:
    """Keys whose values are secret: schemas marked secret, and entries saved as secret."""
    return frozenset({key for key, spec in schemas.items() if spec.get("secret")} | set(marked_entries))


def candidate_errors(trees, schemas: dict, changes: dict) -> list[str]:
    """Errors of a view built from `trees` ([(name, tree, checked_on_write)]) for the keys being changed.

    Layers not checked on write (the environment) are left out: they win over
    what is being written, so they would hide an invalid value instead of catching it.
    """
    tree: dict = {}
    for _, layer_tree, checked in trees:
        if checked:
            tree = layers.deep_merge(tree, layer_tree)
    errors = list(validation.validate_tree(tree, schemas, keys=set(changes)))
    if any(validation.related("experiments", [key]) for key in changes):
        errors.extend(experiment_errors(tree))
    for key, value in changes.items():
        if value is not layers.DELETE:
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                errors.append(f"{key}: the value is not JSON (rule: type)")
    return errors


def view_errors(tree: dict, schemas: dict) -> list[str]:
    """Every schema violation of an effective view, then every schema that is itself invalid."""
    errors = list(validation.validate_tree(tree, schemas))
    errors.extend(experiment_errors(tree))
    for key, spec in sorted(schemas.items()):
        errors.extend(f"{key}: {message}" for message in validation.schema_errors(spec.get("schema", {})))
    return errors


def experiment_errors(tree: dict) -> list[str]:
    """What JSON Schema cannot say of experiments: the control and every override name one of the variants."""
    errors = []
    found = tree.get("experiments")
    for name, spec in sorted((found if isinstance(found, dict) else {}).items()):
        if not isinstance(spec, dict) or not isinstance(spec.get("variants"), dict):
            continue  # the schema reports it
        variants = spec["variants"]
        if spec.get("control") not in variants:
            errors.append(f"experiments.{name}.control: {spec.get('control')!r} is not one of the variants "
                          f"{sorted(variants)} (rule: control)")
        for schema_name, variant in sorted((spec.get("overrides") or {}).items()):
            if variant not in variants:
                errors.append(f"experiments.{name}.overrides.{schema_name}: {variant!r} is not one of the variants "
                              f"{sorted(variants)} (rule: overrides)")
    return errors
