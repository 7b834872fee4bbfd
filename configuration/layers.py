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
import logging
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
        "COURTSIDE_SECRET_KEYS",
    }
)
# Whole families of COURTSIDE_* variables owned by other apps (services/conf.py reads COURTSIDE_SERVICES_*).
ENV_DENIED_PREFIXES = ("COURTSIDE_SERVICES_",)
logger = logging.getLogger("configuration")
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


# Bounds of any YAML or JSON text from outside the code (config files, config_import, COURTSIDE_* values).
# YAML aliases are references: nine nested levels of nine aliases fit in 359 bytes and stand for 9**9
# strings, which hung config_import for minutes. Nodes reached through aliases are counted as they are
# composed (before anything is built) and refused past a bound no hand-written file comes near.
MAX_ALIAS_NODES = 1000
MAX_DEPTH = 50
DEFAULT_MAX_BYTES = 1024 * 1024


class YAMLRefused(yaml.YAMLError):
    """A YAML text the bounded loader will not expand: too many alias nodes, a recursive alias, too deep."""


class BoundedSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader that counts the nodes each alias stands for and refuses past MAX_ALIAS_NODES.

    Each composed node's expanded size (itself and everything under it, aliases
    counted in full) is known when it completes, so an alias adds its target's
    size to a running total at once; an alias to a node still being composed is
    recursive and refused. Nesting is bounded too, so a deep text is a clear
    error instead of a RecursionError.
    """

    max_alias_nodes = MAX_ALIAS_NODES
    max_depth = MAX_DEPTH

    def __init__(self, stream):
        super().__init__(stream)
        self._sizes: dict[int, int] = {}
        self._alias_nodes = 0
        self._depth = 0

    def compose_document(self):
        try:
            return super().compose_document()
        finally:
            self._sizes = {}

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            size = self._sizes.get(id(node))
            if size is None:
                raise YAMLRefused(f"recursive alias refused ({_where(mark)})")
            self._alias_nodes += size
            if self._alias_nodes > self.max_alias_nodes:
                raise YAMLRefused(
                    f"aliases refused: they expand to more than {self.max_alias_nodes} nodes ({_where(mark)})"
                )
            return node
        self._depth += 1
        if self._depth > self.max_depth:
            raise YAMLRefused(f"nested deeper than {self.max_depth} levels ({_where(self.peek_event().start_mark)})")
        node = super().compose_node(parent, index)
        self._depth -= 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            children = ()
        self._sizes[id(node)] = 1 + sum(self._sizes[id(child)] for child in children)
        return node


def _where(mark) -> str:
    return f"line {mark.line + 1}" if mark is not None else "unknown position"


def _max_bytes() -> int:
    from django.conf import settings

    return getattr(settings, "CONFIGURATION_MAX_FILE_BYTES", DEFAULT_MAX_BYTES)


def check_depth(data, name: str) -> None:
    """Refuse JSON nested past MAX_DEPTH (walked without recursion)."""
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{name}: refused: nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)


def load_text(text: str, *, name: str):
    """The one loader of YAML or JSON from outside the code (JSON by a .json name, YAML otherwise).

    Bounded in size (settings.CONFIGURATION_MAX_FILE_BYTES, 1 MiB by default),
    nesting and alias expansion; raises ValueError naming the file and the reason.
    """
    limit = _max_bytes()
    if len(text.encode("utf-8", errors="replace")) > limit:
        raise ValueError(f"{name}: refused: larger than {limit} bytes")
    if name.endswith(".json"):
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError(f"{name}: refused: nested deeper than {MAX_DEPTH} levels") from None
        except ValueError as exc:
            raise ValueError(f"{name}: cannot parse: {exc}") from exc
        check_depth(data, name)
        return data
    try:
        return yaml.load(text, Loader=BoundedSafeLoader)  # noqa: S506 (a SafeLoader subclass)
    except YAMLRefused as exc:
        raise ValueError(f"{name}: refused: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"{name}: cannot parse: {exc}") from exc


def read_text(path: Path) -> str:
    """A file's text, refused before reading when it is larger than the bound."""
    limit = _max_bytes()
    if path.stat().st_size > limit:
        raise ValueError(f"{path}: refused: larger than {limit} bytes")
    return path.read_text()


def parse_text(text: str, *, name: str):
    """A mapping from YAML or JSON by file name; raises ValueError with the file name on bad or refused text."""
    data = load_text(text, name=name)
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
        tree = deep_merge(tree, parse_text(read_text(path), name=str(path)))
    return tree


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
            entries.append((key, parse_env_value(raw, name=name)))
    return tree_from_entries(entries)
