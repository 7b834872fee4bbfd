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

import threading
from dataclasses import dataclass
from pathlib import Path

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
                tree: dict = {}
                for name, *_ in signature[-1]:
                    tree = layers.deep_merge(tree, layers.parse_text(layers.read_text(Path(name)), name=name))
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
    return sorted([*BUILT_IN, *_registered], key=lambda layer: layer.priority)


def layers_of(scope: str) -> list[Layer]:
    """The layers of one view: the operator's view has no tenant-only layer."""
    return [layer for layer in all_layers() if not (layer.tenant_only and scope == layers.PUBLIC)]


def signatures() -> tuple:
    return tuple(layer.signature() for layer in all_layers())


def reset() -> None:
    for layer in all_layers():
        layer.reset()
