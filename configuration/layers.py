"""The pieces of the layer stack that need no database: merge, files, environment.

Layers, lowest to highest priority (a higher layer wins, dicts deep-merge):

    1. default      configuration/defaults/defaults.yaml, shipped with the code
    2. file         config/base.{yaml,yml,json}, then config/<COURTSIDE_ENV>.{yaml,yml,json}
    3. database     ConfigEntry rows without a tenant (operator admin, API, import)
    4. tenant       ConfigEntry rows of the current tenant
    5. environment  COURTSIDE_<KEY> variables, "__" for nesting (COURTSIDE_CACHE__TTL_SECONDS)

Environment variables win last on purpose: a deployment can always pin a value
(twelve-factor), whatever was saved in the admin.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import yaml

LAYERS = ("default", "file", "database", "tenant", "environment")
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
    }
)
# Whole families of COURTSIDE_* variables owned by other apps (services/conf.py reads COURTSIDE_SERVICES_*).
ENV_DENIED_PREFIXES = ("COURTSIDE_SERVICES_",)
DEFAULTS_DIR = Path(__file__).resolve().parent / "defaults"
FILE_SUFFIXES = (".yaml", ".yml", ".json")


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


_MISSING = object()


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


def parse_text(text: str, *, name: str):
    """YAML or JSON by file name; raises ValueError with the file name on bad syntax."""
    try:
        data = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ValueError(f"{name}: cannot parse: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{name}: the top level must be a mapping, not {type(data).__name__}")
    return data


def load_defaults() -> dict:
    return parse_text((DEFAULTS_DIR / "defaults.yaml").read_text(), name="defaults.yaml")


def load_code_schemas() -> dict:
    """{key: {"schema": ..., "secret": bool, "tenant_editable": bool, "description": str}} from the code."""
    return parse_text((DEFAULTS_DIR / "schemas.yaml").read_text(), name="schemas.yaml")


def environment_files(directory: Path, environment: str) -> list[Path]:
    """The files of the file layer, lowest first: base, then the environment's own."""
    found = []
    for stem in ("base", environment):
        for suffix in FILE_SUFFIXES:
            path = directory / f"{stem}{suffix}"
            if path.is_file():
                found.append(path)
    return found


def files_signature(directory: Path, environment: str) -> tuple:
    """What changes when a file of the layer changes: cheap enough to poll twice a second."""
    signature = []
    for stem in ("base", environment):
        for suffix in FILE_SUFFIXES:
            path = directory / f"{stem}{suffix}"
            try:
                stat = path.stat()
            except OSError:
                continue
            signature.append((str(path), stat.st_mtime_ns, stat.st_size))
    return (str(directory), environment, tuple(signature))


def load_files(directory: Path, environment: str) -> dict:
    """The merged file layer; raises ValueError naming the file on a syntax error."""
    tree: dict = {}
    for path in environment_files(directory, environment):
        tree = deep_merge(tree, parse_text(path.read_text(), name=str(path)))
    return tree


def parse_env_value(raw: str):
    """Typed like YAML: 30 -> int, true -> bool, [a, b] -> list; anything unparsable stays a string."""
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return raw if value is None and raw.strip() not in ("null", "~") else value


def env_key(name: str) -> str | None:
    """COURTSIDE_CACHE__TTL_SECONDS -> cache.ttl_seconds; None for variables that are not configuration."""
    if not name.startswith(ENV_PREFIX) or name in ENV_DENYLIST or name.startswith(ENV_DENIED_PREFIXES):
        return None
    parts = name[len(ENV_PREFIX):].lower().split("__")
    if not all(parts):
        return None
    return ".".join(parts)


def load_environment(environ=None) -> dict:
    environ = os.environ if environ is None else environ
    entries = []
    for name, raw in environ.items():
        key = env_key(name)
        if key is not None:
            entries.append((key, parse_env_value(raw)))
    return tree_from_entries(entries)
