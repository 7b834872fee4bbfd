"""The layers of the configuration and their one precedence list.

Every view of the configuration is the deep merge of these layers, lowest
priority first; a higher layer wins key by key (dicts merge, anything else
replaces). The list below is the only place that says which layer wins:

    priority  name         source                                              present in
        0     default      configuration/defaults/defaults.yaml                 every view
      100     file         config/base.{yaml,yml,json}, config/<COURTSIDE_ENV>.*  every view
      300     database     ConfigEntry rows without a tenant                    every view
      400     tenant       ConfigEntry rows of the view's tenant                tenant views
      500     environment  COURTSIDE_<KEY> variables                            every view

plus the file and environment layers an operator adds with COURTSIDE_CONFIG_FILES and
COURTSIDE_CONFIG_ENV_PREFIXES (below), each at the priority it is given.

Layers of equal priority keep the order they were added in (the later wins),
so a layer added at a built-in's priority sits just above it. The winning
layer's name is what `config.source_of()` answers and what the admin's
"winning layer" column shows.

A new kind of layer is a `Layer` subclass and one `register()` call (in the
module that defines it, or in an AppConfig.ready()); the store, the admin, the
API, `explain()` and the polling of changes pick it up from this list.
tests/configuration/test_layer_stack.py adds one in a single file.

Taken from Sentry's `options/manager.py`: one ordered lookup for every read,
and the answer names its source (there: disk, store, default).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from configuration import layers, selectors, validation


class View:
    """What a layer is given to build its tree: the view's scope, the schemas, pending writes, shared rows."""

    def __init__(self, scope: str, *, schemas: dict, overrides: dict | None = None):
        self.scope = scope
        self.schemas = schemas
        self.overrides = overrides or {}  # {layer name: {key: value or layers.DELETE}}: a write being validated
        self._rows = None

    def entry_rows(self) -> list[tuple[str, object, bool]]:
        """(key, value, is_tenant) of the database layer and this view's tenant layer: one query per view."""
        if self._rows is None:
            self._rows = selectors.entry_rows(scope=self.scope)
        return self._rows


class Layer:
    """One source of configuration values. Subclasses set name and priority and build a tree per view."""

    name: str = ""
    priority: int = 0
    tenant_only: bool = False  # only in a tenant's view (the operator's view has no tenant layer)
    checked_on_write: bool = True  # False: left out when a write is validated (it wins over what is written)

    def tree(self, view: View) -> dict:
        raise NotImplementedError

    def signature(self):
        """Something that changes when the layer's source changes, polled twice a second; None: never polled."""
        return None

    def errors(self, view: View) -> tuple:
        """Why the layer's source is refused (the last good values stay live): config.validate() and the admin."""
        return ()

    def reset(self) -> None:
        """Forget anything cached (config.reload())."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} priority={self.priority}>"


class DefaultsLayer(Layer):
    """The code's defaults, parsed once."""

    name, priority = "default", 0

    def __init__(self):
        self._tree: dict | None = None

    def tree(self, view: View) -> dict:
        if self._tree is None:
            self._tree = layers.load_defaults()
        return self._tree

    def reset(self) -> None:
        self._tree = None


@dataclass(frozen=True)
class _FilesState:
    signature: tuple
    tree: dict
    errors: tuple


class FilesLayer(Layer):
    """Files merged in order; a file that does not parse or validate leaves the last good ones live.

    Without `path` it is the built-in file layer: config/base.* then config/<COURTSIDE_ENV>.*,
    in the folder of COURTSIDE_CONFIG_DIR. With `path`, that one file (relative to the folder).
    """

    def __init__(self, name: str = "file", priority: int = 100, *, path: str | None = None):
        self.name, self.priority, self.path = name, priority, path
        self._state: _FilesState | None = None
        self._lock = threading.Lock()

    def candidates(self) -> tuple[tuple, list]:
        """(where, paths): `where` names what the paths depend on, so last good values never cross folders."""
        directory = layers.config_dir()
        if self.path is not None:
            path = directory / self.path
            return (str(path),), [path]
        environment = layers.current_environment()
        paths = [directory / f"{stem}{suffix}" for stem in ("base", environment) for suffix in layers.FILE_SUFFIXES]
        return (str(directory), environment), paths

    def signature(self):
        where, paths = self.candidates()
        stats = []
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue
            stats.append((str(path), stat.st_mtime_ns, stat.st_size))
        return (*where, tuple(stats))

    def _load(self, view: View) -> _FilesState:
        signature = self.signature()
        state = self._state
        if state is not None and state.signature == signature:
            return state
        with self._lock:
            state = self._state
            if state is not None and state.signature == signature:
                return state
            last_good = state.tree if state is not None and state.signature[:-1] == signature[:-1] else {}
            try:
                tree = self.read(signature)
                errors = validation.validate_tree(layers.deep_merge(DEFAULT.tree(view), tree), view.schemas)
            except (OSError, ValueError) as exc:
                tree, errors = last_good, [str(exc)]
            if errors:
                layers.logger.error("configuration files of the %s layer refused, the previous values stay live: %s",
                                    self.name, "; ".join(errors))
                state = _FilesState(signature, last_good, tuple(errors))
            else:
                state = _FilesState(signature, tree, ())
            self._state = state
            return state

    def read(self, signature=None) -> dict:
        """The merged files as they are now; raises ValueError (or OSError) naming the file it refuses.

        Each file is bounded like every text from outside (layers.read_text, layers.parse_text:
        CONFIGURATION_MAX_FILE_BYTES, nesting, YAML aliases).
        """
        tree: dict = {}
        for name, *_ in (signature or self.signature())[-1]:
            tree = layers.deep_merge(tree, layers.parse_text(layers.read_text(Path(name)), name=name))
        return tree

    def tree(self, view: View) -> dict:
        return self._load(view).tree

    def errors(self, view: View) -> tuple:
        return self._load(view).errors

    def reset(self) -> None:
        self._state = None


class EntriesLayer(Layer):
    """ConfigEntry rows: the operator's (no tenant) or the view's tenant's; the layers the services write."""

    def __init__(self, name: str, priority: int, *, tenant: bool):
        self.name, self.priority, self.tenant_only = name, priority, tenant

    def tree(self, view: View) -> dict:
        entries = {key: value for key, value, is_tenant in view.entry_rows() if is_tenant == self.tenant_only}
        for key, value in view.overrides.get(self.name, {}).items():
            if value is layers.DELETE:
                entries.pop(key, None)
            else:
                entries[key] = value
        return layers.tree_from_entries(entries.items())


class EnvironmentLayer(Layer):
    """<prefix><KEY> variables, "__" for nesting, typed as YAML; read on every rebuild."""

    checked_on_write = False

    def __init__(self, name: str = "environment", priority: int = 500, *, prefix: str = layers.ENV_PREFIX):
        self.name, self.priority, self.prefix = name, priority, prefix

    def tree(self, view: View) -> dict:
        return layers.load_environment(prefix=self.prefix)


DEFAULT = DefaultsLayer()
BUILT_IN = (
    DEFAULT,
    FilesLayer(),
    EntriesLayer("database", 300, tenant=False),
    EntriesLayer("tenant", 400, tenant=True),
    EnvironmentLayer(),
)
_registered: list[Layer] = []

# Layers an operator adds by setting, beside the built-in ones:
#   COURTSIDE_CONFIG_FILES=app.yaml:100,secrets.json:150   (paths relative to the config folder, or absolute)
#   COURTSIDE_CONFIG_ENV_PREFIXES=NBA_MCP_:200              (NBA_MCP_CACHE__TTL_SECONDS=30 sets cache.ttl_seconds)
# (or settings.CONFIGURATION_FILES / CONFIGURATION_ENV_PREFIXES, same syntax). A priority left out is the
# built-in layer's of the same kind (file 100, environment 500): the added layer then sits just above it.
FILES_SETTING, PREFIXES_SETTING = "COURTSIDE_CONFIG_FILES", "COURTSIDE_CONFIG_ENV_PREFIXES"
_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]*_$")
_configured: dict[tuple, tuple[list[Layer], tuple[str, ...]]] = {}


def _setting(name: str) -> str:
    value = os.environ.get(name)
    if value is None:
        value = getattr(settings, name.replace("COURTSIDE_CONFIG_", "CONFIGURATION_"), "") or ""
    return value.strip()


def _items(text: str, setting: str, default_priority: int, errors: list) -> list[tuple[str, int]]:
    items = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        source, _, priority = item.rpartition(":") if ":" in item else (item, "", "")
        try:
            number = int(priority) if priority else default_priority
        except ValueError:
            errors.append(f"{setting}: {item!r}: the priority after ':' must be a whole number")
            continue
        if not 0 <= number <= 1_000_000:
            errors.append(f"{setting}: {item!r}: the priority must be within 0..1000000")
            continue
        items.append((source, number))
    return items


def configured() -> tuple[list[Layer], tuple[str, ...]]:
    """(layers, errors) of COURTSIDE_CONFIG_FILES and COURTSIDE_CONFIG_ENV_PREFIXES; a refused item is left out."""
    key = (_setting(FILES_SETTING), _setting(PREFIXES_SETTING))
    found = _configured.get(key)
    if found is not None:
        return found
    added: list[Layer] = []
    errors: list[str] = []
    names = {layer.name for layer in BUILT_IN}
    for path, priority in _items(key[0], FILES_SETTING, 100, errors):
        if Path(path).suffix not in layers.FILE_SUFFIXES:
            errors.append(f"{FILES_SETTING}: {path!r}: a configuration file ends in .yaml, .yml or .json")
        elif f"file:{path}" in names:
            errors.append(f"{FILES_SETTING}: {path!r} is listed twice")
        else:
            added.append(FilesLayer(f"file:{path}", priority, path=path))
            names.add(added[-1].name)
    for prefix, priority in _items(key[1], PREFIXES_SETTING, 500, errors):
        if not _PREFIX.match(prefix) or prefix.startswith(layers.ENV_PREFIX):
            errors.append(f"{PREFIXES_SETTING}: {prefix!r}: a prefix is upper case, ends in '_' and is not "
                          f"{layers.ENV_PREFIX}...")
        elif f"environment:{prefix}" in names:
            errors.append(f"{PREFIXES_SETTING}: {prefix!r} is listed twice")
        else:
            added.append(EnvironmentLayer(f"environment:{prefix}", priority, prefix=prefix))
            names.add(added[-1].name)
    for error in errors:
        layers.logger.error("configuration: %s (left out)", error)
    _configured.clear()  # one setting at a time: the layers of an older value are dropped with their state
    _configured[key] = (added, tuple(errors))
    return _configured[key]


def register(layer: Layer) -> Layer:
    """Add a layer to the precedence list (by its priority); its name must be new."""
    if any(existing.name == layer.name for existing in all_layers()):
        raise ValueError(f"a configuration layer named {layer.name!r} exists already")
    _registered.append(layer)
    return layer


def unregister(layer: Layer) -> None:
    if layer in _registered:
        _registered.remove(layer)


def all_layers() -> list[Layer]:
    """Every layer, lowest priority first (equal priorities: the order they were added in)."""
    return sorted([*BUILT_IN, *configured()[0], *_registered], key=lambda layer: layer.priority)


def layers_of(scope: str) -> list[Layer]:
    """The layers of one view: the operator's view has no tenant-only layer."""
    return [layer for layer in all_layers() if not (layer.tenant_only and scope == layers.PUBLIC)]


def signatures() -> tuple:
    return tuple(layer.signature() for layer in all_layers())


def reset() -> None:
    for layer in all_layers():
        layer.reset()
    _configured.clear()
