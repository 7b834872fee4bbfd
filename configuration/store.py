"""The process's configuration store: one snapshot per view, built from the layer stack, dropped on change.

A snapshot is the merged tree of a view (the operator's, "public", or a
tenant's schema) flattened for dict lookups. It is rebuilt on the next read
after any change: writers invalidate their own process at once and on commit
(note_local_write), the listener thread (configuration/listener.py) drops the
snapshots of every other process when the writer commits, and polls the
layers' sources (files) between notifications.

The store sits below the services that write (configuration/services/) and
the facade that reads (configuration/conf.py): the services ask it for policy
(secret keys, tenant-editable keys, the errors a write would cause) and tell it
about their writes; nothing here imports them.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction

from configuration import experiments, layers, policy, selectors, stack
from configuration.layers import PUBLIC
from configuration.listener import Listener, in_test_environment
from configuration.masking import is_secret
from configuration.watchers import Watch, Watchers


@dataclass(frozen=True)
class Snapshot:
    """One view of the configuration, built once and read many times."""

    scope: str
    tree: dict
    flat: dict
    sources: dict
    layer_trees: tuple
    secret_keys: frozenset
    flags: dict = field(default_factory=dict)  # flag decisions of this view, memoised until the next change
    variants: dict = field(default_factory=dict)  # experiment assignments of this view, memoised likewise


class Store:
    """Snapshots per view, the schemas, the watchers and the listener of one process."""

    def __init__(self):
        self.snapshots: dict[str, Snapshot] = {}
        self._generation = 0
        self._lock = threading.RLock()
        self._local = threading.local()
        self._schemas: dict | None = None
        self._code_schemas: dict | None = None
        self._signatures: tuple | None = None  # the layers' sources when the snapshots were built
        self._listener: Listener | None = None
        self.watchers = Watchers(self.snapshot)
        if hasattr(os, "register_at_fork"):
            # A forked worker inherits snapshots but not the listener thread: start clean.
            os.register_at_fork(after_in_child=self._after_fork)

    # ------------------------------------------------------------------ views
    @staticmethod
    def scope(tenant) -> str:
        if tenant is None:
            return getattr(connections["default"], "schema_name", PUBLIC) or PUBLIC
        if isinstance(tenant, str):
            return tenant
        return tenant.schema_name

    def snapshot(self, tenant=None) -> Snapshot:
        scope = self.scope(tenant)
        return self.snapshots.get(scope) or self.load(scope)

    def load(self, scope: str) -> Snapshot:
        generation = self._generation
        self.ensure_listener()
        snapshot = self._build(scope)
        if self._cacheable():
            with self._lock:
                if generation == self._generation:
                    self.snapshots[scope] = snapshot
            if scope == PUBLIC:
                self.watchers.note_public(snapshot.flat)
        return snapshot

    def _build(self, scope: str) -> Snapshot:
        if self._signatures is None:
            self._signatures = stack.signatures()
        trees = [(name, tree) for name, tree, _ in self.layer_trees(scope)]
        tree: dict = {}
        for _, layer_tree in trees:
            tree = layers.deep_merge(tree, layer_tree)
        flat = layers.flatten(tree)
        sources = {}
        for name, layer_tree in trees:
            for key in layers.flatten(layer_tree):
                if key in flat:
                    sources[key] = name
        secret_keys = policy.secret_keys(self.schemas(), selectors.secret_entry_keys(scope=scope))
        return Snapshot(scope, tree, flat, sources, tuple(trees), secret_keys)

    def layer_trees(self, scope: str, *, overrides: dict | None = None) -> list[tuple[str, dict, bool]]:
        """(name, tree, checked on write) of each layer of the view, lowest first."""
        view = stack.View(scope, schemas=self.schemas(), overrides=overrides)
        return [(layer.name, layer.tree(view), layer.checked_on_write) for layer in stack.layers_of(scope)]

    def layer_errors(self, scope: str) -> list[str]:
        view = stack.View(scope, schemas=self.schemas())
        return [error for layer in stack.layers_of(scope) for error in layer.errors(view)]

    # ----------------------------------------------------------------- policy
    def schemas(self) -> dict:
        """{key: {"schema", "secret", "tenant_editable", "description", "origin"}}: code, then database rows."""
        schemas = self._schemas
        if schemas is None:
            if self._code_schemas is None:
                self._code_schemas = layers.load_code_schemas()  # parsed once: YAML parsing costs milliseconds
            schemas = policy.merged_schemas(self._code_schemas, selectors.schema_specs())
            if self._cacheable():
                self._schemas = schemas
        return schemas

    def tenant_editable(self, key: str) -> bool:
        return policy.tenant_editable(self.schemas(), key)

    def is_secret(self, key: str, *, tenant=None) -> bool:
        return is_secret(key, self.snapshot(tenant).secret_keys)

    def candidate_errors(self, *, scope: str, layer: str, changes: dict) -> list[str]:
        """Errors the view would have with `changes` ({key: value or DELETE}) applied to one layer."""
        trees = self.layer_trees(scope, overrides={layer: changes})
        return policy.candidate_errors(trees, self.schemas(), changes)

    def validate(self, *, tenant=None) -> list[str]:
        """Every error: refused layer sources (files), and every schema violation of the effective view."""
        scope = self.scope(tenant)
        errors = self.layer_errors(scope)
        errors.extend(policy.view_errors(self.snapshot(scope).tree, self.schemas()))
        return errors

    # ------------------------------------------------------ cache and reload
    def invalidate(self) -> None:
        with self._lock:
            self.last_invalidated_at = time.time()  # wall clock of the last reload (ops/metrics.py reads the lag)
            self._generation += 1
            self.snapshots = {}
            self._schemas = None

    def reload(self) -> None:
        """Forget everything cached, files and code defaults included (tests, COURTSIDE_ENV changes)."""
        with self._lock:
            stack.reset()
            self._code_schemas = None
            self._signatures = None
            self.invalidate()

    def check_files(self) -> bool:
        """Pick up changed layer sources (files); True when they changed."""
        seen = self._signatures
        if seen is None:
            return False
        current = stack.signatures()
        if current == seen:
            return False
        self._signatures = current
        # The next read re-reads (and validates) the files; watchers need the new view now.
        self.invalidate()
        if self.watchers:
            self.check_watchers()
        return True

    def idle(self) -> bool:
        """The listener's work between notifications; True when it used the database."""
        changed = self.check_files()
        return experiments.exposures.maybe_flush() or changed

    def note_local_write(self) -> None:
        """Called by the services inside the writing transaction."""
        self.invalidate()
        # Until the commit this thread sees rows other threads must not cache.
        self._local.uncommitted = True
        transaction.on_commit(self._after_commit)

    def _after_commit(self) -> None:
        self._local.uncommitted = False
        self.invalidate()
        self.check_watchers()

    def _cacheable(self) -> bool:
        if getattr(self._local, "uncommitted", False):
            if connections["default"].in_atomic_block:
                return False
            self._local.uncommitted = False  # the transaction ended, committed or rolled back
        return True

    @staticmethod
    def config_dir() -> Path:
        return layers.config_dir()

    # ---------------------------------------------------------------- watches
    def watch(self, key: str, callback, *, tenant=None) -> Watch:
        watcher = self.watchers.add(key, callback, self.scope(tenant))
        self.ensure_listener(explicit=True)
        return watcher

    def has_watchers(self) -> bool:
        return bool(self.watchers)

    def check_watchers(self) -> None:
        self.watchers.check()

    def unwatch_all(self) -> None:
        """Drop every watcher and baseline (tests; a process shutting down its consumers)."""
        self.watchers.clear()

    # --------------------------------------------------------------- listener
    def ensure_listener(self, *, explicit: bool = False) -> None:
        if not getattr(settings, "CONFIGURATION_HOT_RELOAD", True):
            return
        if not explicit and in_test_environment():
            # Under Django's test environment the thread would hold a connection to the test
            # database and stop it from being dropped: there it starts only when a test asks
            # for it (watch(), listener_ready()) and stops it (stop_listener()).
            return
        listener = self._listener
        if listener is not None and listener.is_alive() and listener.pid == os.getpid():
            return
        with self._lock:
            listener = self._listener
            if listener is not None and listener.is_alive() and listener.pid == os.getpid():
                return
            self._listener = Listener(self, dict(connections["default"].settings_dict))
            self._listener.start()

    def listener_ready(self, timeout: float = 5.0) -> bool:
        """Wait until this process listens for changes (tests and the benchmark start a process then wait)."""
        self.ensure_listener(explicit=True)
        listener = self._listener
        return listener is not None and listener.ready.wait(timeout)

    def stop_listener(self) -> None:
        """Stop the listener thread and close its connections (before a test database is dropped)."""
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None and listener.is_alive():
            listener.stop.set()
            listener.join(timeout=5)

    def _after_fork(self) -> None:
        self._listener = None
        self._lock = threading.RLock()
        self.watchers.lock = threading.RLock()
        self._local = threading.local()
        self.snapshots = {}
        self._generation += 1


store = Store()
