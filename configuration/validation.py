"""JSON Schema validation of configuration trees, with messages that name the key and the rule."""

from __future__ import annotations

import json
from functools import lru_cache

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError

from configuration import layers


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_json), format_checker=FormatChecker())


def validator_for(schema: dict) -> Draft202012Validator:
    return _validator(json.dumps(schema, sort_keys=True))


def schema_errors(schema) -> list[str]:
    """Why a JSON Schema is itself invalid (empty when it is fine)."""
    if not isinstance(schema, dict):
        return ["a JSON Schema must be an object"]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [f"invalid JSON Schema: {exc.message}"]
    return []


def related(schema_key: str, keys) -> bool:
    """A schema applies to a change when one key is the other or contains it."""
    for key in keys:
        if key == schema_key or key.startswith(schema_key + ".") or schema_key.startswith(key + "."):
            return True
    return False


def value_errors(key: str, value, schema: dict) -> list[str]:
    errors = []
    for error in sorted(validator_for(schema).iter_errors(value), key=lambda e: list(e.absolute_path)):
        path = ".".join([key, *(str(p) for p in error.absolute_path)])
        errors.append(f"{path}: {error.message} (rule: {error.validator})")
    return errors


def validate_tree(tree: dict, schemas: dict, *, keys=None) -> list[str]:
    """Every violation in the tree; with keys, only of the schemas those keys touch."""
    errors = []
    for schema_key in sorted(schemas):
        spec = schemas[schema_key]
        if not spec.get("schema") or (keys is not None and not related(schema_key, keys)):
            continue
        value = layers.get_path(tree, schema_key, layers._MISSING)
        if value is layers._MISSING:
            continue
        errors.extend(value_errors(schema_key, value, spec["schema"]))
    return errors
