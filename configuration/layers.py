"""The pieces of the layers that need no database: trees and their merge, files, environment variables.

The layers themselves and their one precedence list are in configuration/stack.py.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

from django.conf import settings

from configuration.loading import (  # noqa: F401  (the loader's names, re-exported for callers of layers)
    DEFAULT_MAX_BYTES,
    MAX_ALIAS_NODES,
    MAX_DEPTH,
    BoundedSafeLoader,
    YAMLRefused,
    check_depth,
    load_text,
    parse_text,
    read_text,
)

ENVIRONMENTS = ("development", "staging", "production")
ENV_PREFIX = "COURTSIDE_"
# COURTSIDE_* variables that belong to other parts of Courtside, never configuration keys.
ENV_DENYLIST = frozenset(
    {
        "COURTSIDE_ENV",
        "COURTSIDE_EMBEDDED_AUTOSTART",
        "COURTSIDE_ADMIN_PASSWORD",
        "COURTSIDE_DEMO_TENANT_PASSWORD",
        "COURTSIDE_HOST",
        "COURTSIDE_PORT",
        "COURTSIDE_CONFIG_DIR",
        "COURTSIDE_TENANT_ADMIN_PASSWORD",
        "COURTSIDE_SECRET_KEYS",
        "COURTSIDE_CONFIG_FILES",
        "COURTSIDE_CONFIG_ENV_PREFIXES",
    }
)
# Whole families of COURTSIDE_* variables owned by other apps (services/conf.py reads COURTSIDE_SERVICES_*).
ENV_DENIED_PREFIXES = ("COURTSIDE_SERVICES_", "COURTSIDE_CONFIG_")  # COURTSIDE_CONFIG_*: the layers' own settings
logger = logging.getLogger("configuration")
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
FILE_SUFFIXES = (".yaml", ".yml", ".json")


PUBLIC = "public"  # the operator's view (the public schema); every other view is a tenant's schema name
DELETE = object()  # marks a key removed in a candidate change
_MISSING = object()


def current_environment() -> str:
    return os.environ.get("COURTSIDE_ENV", "").strip() or "development"


def deep_merge(base: dict, overlay: dict) -> dict:
    """A new dict: overlay's values win; nested dicts merge key by key."""
    merged = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def set_path(tree: dict, key: str, value) -> None:
    """Set a dotted key in a nested dict; a dict value merges into what is there."""
    *parents, leaf = key.split(".")
    node = tree
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if isinstance(value, dict) and isinstance(node.get(leaf), dict):
        node[leaf] = deep_merge(node[leaf], value)
    else:
        node[leaf] = copy.deepcopy(value)


def tree_from_entries(entries) -> dict:
    """Rows of (dotted key, value) as one tree; shallower keys first so deeper ones refine them."""
    tree: dict = {}
    for key, value in sorted(entries, key=lambda kv: (kv[0].count("."), kv[0])):
        set_path(tree, key, value)
    return tree


def get_path(tree: dict, key: str, default=_MISSING):
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def flatten(tree: dict, prefix: str = "") -> dict:
    """Every node by dotted key, dict nodes included, so a lookup of a namespace is one dict access."""
    flat = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        flat[dotted] = value
        if isinstance(value, dict):
            flat.update(flatten(value, dotted))
    return flat


def leaves(tree: dict, prefix: str = "") -> dict:
    """Only the non-dict values (and empty dicts) by dotted key: what an import writes."""
    out = {}
    for key, value in tree.items():
        dotted = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(leaves(value, dotted))
        else:
            out[dotted] = value
    return out


def load_defaults() -> dict:
    return parse_text((DEFAULTS_DIR / "defaults.yaml").read_text(), name="defaults.yaml")


def load_code_schemas() -> dict:
    """{key: {"schema": ..., "secret": bool, "tenant_editable": bool, "description": str}} from the code."""
    return parse_text((DEFAULTS_DIR / "schemas.yaml").read_text(), name="schemas.yaml")


_warned_env_values: set[tuple[str, str]] = set()


def parse_env_value(raw: str, *, name: str = "a COURTSIDE_* variable"):
    """Typed like YAML: 30 -> int, true -> bool, [a, b] -> list; anything unparsable or refused stays a string."""
    try:
        value = load_text(raw, name=name)
    except ValueError as exc:
        if "refused" in str(exc) and (name, raw) not in _warned_env_values:
            _warned_env_values.add((name, raw))  # once per value, not on every snapshot rebuild
            logger.warning("configuration: %s kept as a plain string: %s", name, exc)
        return raw
    return raw if value is None and raw.strip() not in ("null", "~") else value


def env_key(name: str, prefix: str = ENV_PREFIX) -> str | None:
    """COURTSIDE_CACHE__TTL_SECONDS -> cache.ttl_seconds; None for variables that are not configuration."""
    if not name.startswith(prefix):
        return None
    if prefix == ENV_PREFIX and (name in ENV_DENYLIST or name.startswith(ENV_DENIED_PREFIXES)):
        return None
    parts = name[len(prefix):].lower().split("__")
    if not all(parts):
        return None
    return ".".join(parts)


def load_environment(environ=None, *, prefix: str = ENV_PREFIX) -> dict:
    """The variables named <prefix><KEY> as one tree ("__" for nesting, values typed as YAML)."""
    environ = os.environ if environ is None else environ
    entries = []
    for name, raw in environ.items():
        key = env_key(name, prefix)
        if key is not None:
            entries.append((key, parse_env_value(raw, name=name)))
    return tree_from_entries(entries)


def config_dir() -> Path:
    """The folder of the file layer: COURTSIDE_CONFIG_DIR, settings.CONFIGURATION_DIR, else <BASE_DIR>/config."""
    configured = os.environ.get("COURTSIDE_CONFIG_DIR") or getattr(settings, "CONFIGURATION_DIR", None)
    return Path(configured) if configured else Path(settings.BASE_DIR) / "config"
