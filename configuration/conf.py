"""The `config` facade: layered, validated configuration with an in-process cache and hot reload.

    from configuration import config
    config.get("cache.ttl_seconds", default=300)     # the current tenant's view inside tenant_context
    config.source_of("cache.ttl_seconds")            # "environment", "tenant", "database", "file" or "default"
    config.flag("new_scoring", tenant=tenant)
    config.watch("cache", lambda key, old, new: ...)

Reads are a dict lookup in a snapshot per schema (operator view "public", or
a tenant's view). A snapshot is rebuilt on the next read after any change:
writers invalidate their own process at once and on commit, and a daemon
thread per process LISTENs on PostgreSQL for the NOTIFY every write sends in
its transaction, so every other process (web workers, task workers, commands)
drops its snapshots as soon as the writer commits. The same thread polls the
configuration files twice a second.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import connections, transaction

from configuration import layers, validation
from configuration.masking import is_secret, mask
from configuration.signals import config_changed

logger = logging.getLogger("configuration")

NOTIFY_CHANNEL = "courtside_config"
PUBLIC = "public"
DELETE = object()  # marks a key removed in a candidate change
_MISSING = layers._MISSING


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


@dataclass(frozen=True)
class FilesState:
    signature: tuple
    tree: dict
    errors: tuple


class Watch:
    """A registered watcher; cancel() stops it."""

    def __init__(self, owner: Config, key: str, callback, scope: str):
        self.owner, self.key, self.callback, self.scope = owner, key, callback, scope

    def cancel(self) -> None:
        owner = self.owner
        with owner._watch_lock:
            if self in owner._watchers:
                owner._watchers.remove(self)
            if not any(w.scope == self.scope for w in owner._watchers) and not (
                self.scope == PUBLIC and config_changed.has_listeners()
            ):
                owner._baselines.pop(self.scope, None)


class Config:
    """The process-wide configuration; one instance, `configuration.config`."""

    def __init__(self):
        self._snapshots: dict[str, Snapshot] = {}
        self._generation = 0
        self._lock = threading.RLock()
        self._watch_lock = threading.RLock()
        self._watchers: list[Watch] = []
        self._baselines: dict[str, dict] = {}
        self._files: FilesState | None = None
        self._defaults: dict | None = None
        self._schemas: dict | None = None
        self._code_schemas: dict | None = None
        self._listener: _Listener | None = None
        self._local = threading.local()
        if hasattr(os, "register_at_fork"):
            # A forked worker inherits snapshots but not the listener thread: start clean.
            os.register_at_fork(after_in_child=self._after_fork)

    # ------------------------------------------------------------------ reads
    def get(self, key: str, default=None, *, tenant=None, cast=None):
        """The effective value of a dotted key in the current (or given) tenant's view."""
        scope = tenant if type(tenant) is str else self._scope(tenant)
        snapshot = self._snapshots.get(scope)
        if snapshot is None:
            snapshot = self._load(scope)
        value = snapshot.flat.get(key, _MISSING)
        if value is _MISSING:
            return default
        if type(value) is dict or type(value) is list:
            value = copy.deepcopy(value)  # a caller's edit must not change the shared snapshot
        return cast(value) if cast is not None else value

    def source_of(self, key: str, *, tenant=None) -> str | None:
        """The layer that won for the key: default, file, database, tenant or environment."""
        return self.snapshot(tenant).sources.get(key)

    def explain(self, key: str, *, tenant=None, masked: bool = True) -> dict:
        """The effective value, the winning layer and what each layer holds for the key."""
        snapshot = self.snapshot(tenant)
        value = snapshot.flat.get(key, _MISSING)
        per_layer = []
        for name, tree in snapshot.layer_trees:
            layer_value = layers.get_path(tree, key, _MISSING)
            if layer_value is not _MISSING:
                per_layer.append({"layer": name, "value": self._mask(key, layer_value, snapshot, masked)})
        return {
            "key": key,
            "exists": value is not _MISSING,
            "value": None if value is _MISSING else self._mask(key, value, snapshot, masked),
            "source": snapshot.sources.get(key),
            "secret": self.is_secret(key, tenant=tenant),
            "layers": per_layer,
        }

    def as_dict(self, *, tenant=None, masked: bool = False) -> dict:
        snapshot = self.snapshot(tenant)
        tree = copy.deepcopy(snapshot.tree)
        return mask("", tree, snapshot.secret_keys) if masked else tree

    def effective(self, *, tenant=None, masked: bool = True) -> list[dict]:
        """Every leaf key with its value and winning layer, sorted: the admin's and the API's listing."""
        snapshot = self.snapshot(tenant)
        rows = []
        for key, value in sorted(layers.leaves(snapshot.tree).items()):
            rows.append({
                "key": key,
                "value": self._mask(key, value, snapshot, masked),
                "source": snapshot.sources.get(key),
                "secret": is_secret(key, snapshot.secret_keys),
            })
        return rows

    def is_secret(self, key: str, *, tenant=None) -> bool:
        return is_secret(key, self.snapshot(tenant).secret_keys)

    def mask(self, key: str, value, *, tenant=None):
        return mask(key, value, self.snapshot(tenant).secret_keys)

    def snapshot(self, tenant=None) -> Snapshot:
        scope = self._scope(tenant)
        return self._snapshots.get(scope) or self._load(scope)

    def validate(self, *, tenant=None) -> list[str]:
        """Every error: unreadable or invalid files, and every schema violation of the effective view."""
        scope = self._scope(tenant)
        errors = list(self._files_state().errors)
        snapshot = self.snapshot(scope)
        errors.extend(validation.validate_tree(snapshot.tree, self.schemas()))
        for key, spec in sorted(self.schemas().items()):
            errors.extend(f"{key}: {message}" for message in validation.schema_errors(spec.get("schema", {})))
        return errors

    def flag(self, name: str, tenant=None) -> bool:
        """Whether a feature flag is on for a tenant (the current one by default)."""
        scope = tenant if type(tenant) is str else self._scope(tenant)
        snapshot = self._snapshots.get(scope) or self._load(scope)
        decision = snapshot.flags.get(name)
        if decision is None:
            decision = evaluate_flag(name, snapshot.flat.get(f"flags.{name}", False), scope)
            snapshot.flags[name] = decision
        return decision

    def schemas(self) -> dict:
        """{key: {"schema", "secret", "tenant_editable", "description", "origin"}}: code, then database rows."""
        schemas = self._schemas
        if schemas is None:
            from configuration import selectors

            if self._code_schemas is None:
                self._code_schemas = layers.load_code_schemas()  # parsed once: YAML parsing costs milliseconds
            schemas = {key: {**spec, "origin": "code"} for key, spec in self._code_schemas.items()}
            schemas.update(selectors.schema_specs())
            if self._cacheable():
                self._schemas = schemas
        return schemas

    def tenant_editable(self, key: str) -> bool:
        """Tenant admins may override the key: a schema at or above it allows it."""
        parts = key.split(".")
        schemas = self.schemas()
        return any(schemas.get(".".join(parts[:i]), {}).get("tenant_editable") for i in range(1, len(parts) + 1))

    # ----------------------------------------------------------------- writes
    def set(self, key: str, value, *, tenant=None, secret=None, changed_by: str = "code", source: str = "code"):
        """Persist a runtime value (database layer, or a tenant's override); validated, with history."""
        from configuration import services

        return services.entry_set(key=key, value=value, tenant=tenant, secret=secret, changed_by=changed_by,
                                  source=source)

    def delete(self, key: str, *, tenant=None, changed_by: str = "code", source: str = "code") -> None:
        from configuration import services

        services.entry_delete(key=key, tenant=tenant, changed_by=changed_by, source=source)

    def candidate_errors(self, *, scope: str, layer: str, changes: dict) -> list[str]:
        """Errors the view would have with `changes` ({key: value or DELETE}) applied to one layer.

        The environment layer is left out: it wins over what is being written,
        so it would hide an invalid value instead of catching it.
        """
        trees = self._layer_trees(scope, overrides={layer: changes})
        tree: dict = {}
        for name, layer_tree in trees:
            if name != "environment":
                tree = layers.deep_merge(tree, layer_tree)
        errors = list(validation.validate_tree(tree, self.schemas(), keys=set(changes)))
        for key, value in changes.items():
            if value is not DELETE:
                try:
                    json.dumps(value)
                except (TypeError, ValueError):
                    errors.append(f"{key}: the value is not JSON (rule: type)")
        return errors

    # ---------------------------------------------------------------- watches
    def watch(self, key: str, callback, *, tenant=None) -> Watch:
        """Call callback(key, old, new) once per change of the key's value (a namespace: any key under it)."""
        scope = self._scope(tenant)
        with self._watch_lock:
            if scope not in self._baselines:
                self._baselines[scope] = self.snapshot(scope).flat
            watcher = Watch(self, key, callback, scope)
            self._watchers.append(watcher)
        self._ensure_listener(explicit=True)
        return watcher

    def unwatch_all(self) -> None:
        """Drop every watcher and baseline (tests; a process shutting down its consumers)."""
        with self._watch_lock:
            self._watchers.clear()
            self._baselines.clear()

    def check_watchers(self) -> None:
        """Compare each watched view with what its watchers last saw; call back for what changed."""
        with self._watch_lock:
            for scope in list(self._baselines):
                old = self._baselines[scope]
                new = self.snapshot(scope).flat
                if new == old:
                    continue
                self._baselines[scope] = new
                changed = sorted(
                    key for key in set(old) | set(new)
                    if not isinstance(old.get(key), dict) and not isinstance(new.get(key), dict)
                    and old.get(key, _MISSING) != new.get(key, _MISSING)
                )
                secret_keys = self.snapshot(scope).secret_keys
                for key in changed:
                    logger.info("configuration %s changed in %s: %r -> %r", key, scope,
                                mask(key, old.get(key), secret_keys), mask(key, new.get(key), secret_keys))
                    config_changed.send(sender=Config, key=key, old=old.get(key), new=new.get(key), tenant=scope)
                for watcher in [w for w in self._watchers if w.scope == scope]:
                    before, after = old.get(watcher.key), new.get(watcher.key)
                    if before != after:
                        try:
                            watcher.callback(watcher.key, copy.deepcopy(before), copy.deepcopy(after))
                        except Exception:  # one broken watcher must not starve the others
                            logger.exception("configuration watcher of %s failed", watcher.key)

    # ------------------------------------------------------ cache and reload
    def invalidate(self) -> None:
        with self._lock:
            self._generation += 1
            self._snapshots = {}
            self._schemas = None

    def reload(self) -> None:
        """Forget everything cached, files and code defaults included (tests, COURTSIDE_ENV changes)."""
        with self._lock:
            self._files = None
            self._defaults = None
            self._code_schemas = None
            self.invalidate()

    def check_files(self) -> bool:
        """Pick up changed configuration files; True when they changed."""
        state = self._files
        if state is None:
            return False
        if layers.files_signature(self.config_dir(), layers.current_environment()) == state.signature:
            return False
        # The next read re-reads (and validates) the files; watchers need the new view now.
        self.invalidate()
        if self._baselines:
            self.check_watchers()
        return True

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

    def config_dir(self) -> Path:
        configured = os.environ.get("COURTSIDE_CONFIG_DIR") or getattr(settings, "CONFIGURATION_DIR", None)
        return Path(configured) if configured else Path(settings.BASE_DIR) / "config"

    @staticmethod
    def _scope(tenant) -> str:
        if tenant is None:
            return getattr(connections["default"], "schema_name", PUBLIC) or PUBLIC
        if isinstance(tenant, str):
            return tenant
        return tenant.schema_name

    def _mask(self, key, value, snapshot, masked):
        return mask(key, value, snapshot.secret_keys) if masked else copy.deepcopy(value)

    def _load(self, scope: str) -> Snapshot:
        generation = self._generation
        self._ensure_listener()
        snapshot = self._build(scope)
        if self._cacheable():
            with self._lock:
                if generation == self._generation:
                    self._snapshots[scope] = snapshot
            if scope == PUBLIC and PUBLIC not in self._baselines and config_changed.has_listeners():
                with self._watch_lock:
                    self._baselines.setdefault(PUBLIC, snapshot.flat)
        return snapshot

    def _build(self, scope: str) -> Snapshot:
        from configuration import selectors

        trees = self._layer_trees(scope)
        tree: dict = {}
        for _, layer_tree in trees:
            tree = layers.deep_merge(tree, layer_tree)
        flat = layers.flatten(tree)
        sources = {}
        for name, layer_tree in trees:
            for key in layers.flatten(layer_tree):
                if key in flat:
                    sources[key] = name
        secret_keys = {key for key, spec in self.schemas().items() if spec.get("secret")}
        secret_keys |= set(selectors.secret_entry_keys(scope=scope))
        return Snapshot(scope, tree, flat, sources, tuple(trees), frozenset(secret_keys))

    def _layer_trees(self, scope: str, *, overrides: dict | None = None) -> list[tuple[str, dict]]:
        from configuration import selectors

        overrides = overrides or {}
        rows = selectors.entry_rows(scope=scope)
        database = {key: value for key, value, is_tenant in rows if not is_tenant}
        tenant = {key: value for key, value, is_tenant in rows if is_tenant}
        for layer, entries in (("database", database), ("tenant", tenant)):
            for key, value in overrides.get(layer, {}).items():
                if value is DELETE:
                    entries.pop(key, None)
                else:
                    entries[key] = value
        trees = [
            ("default", self._defaults_tree()),
            ("file", self._files_state().tree),
            ("database", layers.tree_from_entries(database.items())),
        ]
        if scope != PUBLIC:
            trees.append(("tenant", layers.tree_from_entries(tenant.items())))
        trees.append(("environment", layers.load_environment()))
        return trees

    def _defaults_tree(self) -> dict:
        if self._defaults is None:
            self._defaults = layers.load_defaults()
        return self._defaults

    def _files_state(self) -> FilesState:
        """The file layer; a file that does not parse or validate leaves the last good one live."""
        directory, environment = self.config_dir(), layers.current_environment()
        signature = layers.files_signature(directory, environment)
        state = self._files
        if state is not None and state.signature == signature:
            return state
        last_good = state.tree if state is not None and state.signature[:2] == signature[:2] else {}
        try:
            tree = layers.load_files(directory, environment)
            errors = validation.validate_tree(layers.deep_merge(self._defaults_tree(), tree), self.schemas())
        except (OSError, ValueError) as exc:
            tree, errors = last_good, [str(exc)]
        if errors:
            logger.error("configuration files in %s refused, the previous values stay live: %s",
                         directory, "; ".join(errors))
            state = FilesState(signature, last_good, tuple(errors))
        else:
            state = FilesState(signature, tree, ())
        self._files = state
        return state

    # --------------------------------------------------------------- listener
    def _ensure_listener(self, *, explicit: bool = False) -> None:
        if not getattr(settings, "CONFIGURATION_HOT_RELOAD", True):
            return
        if not explicit and _in_test_environment():
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
            self._listener = _Listener(self, dict(connections["default"].settings_dict))
            self._listener.start()

    def listener_ready(self, timeout: float = 5.0) -> bool:
        """Wait until this process listens for changes (tests and the benchmark start a process then wait)."""
        self._ensure_listener(explicit=True)
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
        self._watch_lock = threading.RLock()
        self._local = threading.local()
        self._snapshots = {}
        self._generation += 1


def _in_test_environment() -> bool:
    # django.test.utils.setup_test_environment() (Django's runner, pytest-django) installs mail.outbox.
    from django.core import mail

    return hasattr(mail, "outbox")


def flag_bucket(name: str, schema_name: str) -> float:
    """A tenant's stable place in [0, 100) for a flag: the same on every process and every day."""
    digest = hashlib.sha256(f"{name}:{schema_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000 / 100


def evaluate_flag(name: str, spec, schema_name: str) -> bool:
    """A flag is a boolean, or {enabled, tenants, percentage}.

    enabled false turns it off for everyone; a listed tenant is on; the others
    are on when their bucket falls under the percentage (100 by default when
    no tenant is listed, 0 when some are).
    """
    if isinstance(spec, bool):
        return spec
    if not isinstance(spec, dict) or not spec.get("enabled", False):
        return False
    tenants = spec.get("tenants") or []
    if schema_name in tenants:
        return True
    percentage = spec.get("percentage", 0 if tenants else 100)
    if schema_name == PUBLIC:
        return percentage >= 100
    return flag_bucket(name, schema_name) < percentage


class _Listener(threading.Thread):
    """LISTENs for committed changes on its own connection and drops the process's snapshots."""

    def __init__(self, owner: Config, settings_dict: dict):
        super().__init__(name="courtside-config-listener", daemon=True)
        self.owner = owner
        self.pid = os.getpid()
        self.stop = threading.Event()
        self.ready = threading.Event()
        options = settings_dict.get("OPTIONS", {})
        self.conninfo = {
            "dbname": settings_dict.get("NAME"),
            # The embedded server is reached on a socket given in OPTIONS (DATABASE_URL's ?host=&port=).
            "host": settings_dict.get("HOST") or options.get("host") or None,
            "port": settings_dict.get("PORT") or options.get("port") or None,
            "user": settings_dict.get("USER") or None,
            "password": settings_dict.get("PASSWORD") or None,
        }

    def run(self) -> None:
        import psycopg

        while not self.stop.is_set():
            try:
                with psycopg.connect(
                    autocommit=True, application_name="courtside-config-listener", connect_timeout=5,
                    **{k: v for k, v in self.conninfo.items() if v is not None},
                ) as conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    # Changes made while nobody listened are unknown: start from the database.
                    self.owner.invalidate()
                    self.ready.set()
                    while not self.stop.is_set():
                        notified = False
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            notified = True
                        if notified:
                            self.owner.invalidate()
                            self._run_watchers()
                        else:
                            self._check_files()
            except Exception as exc:  # the database restarts or is unreachable: retry, keep serving
                self.ready.clear()
                logger.warning("configuration listener lost its connection (%s); retrying", type(exc).__name__)
                self.stop.wait(1.0)
            finally:
                self._close_django_connection()

    def _run_watchers(self) -> None:
        if self.owner._watchers or self.owner._baselines:
            try:
                self.owner.check_watchers()
            except Exception:
                logger.exception("configuration watchers failed")
            self._close_django_connection()

    def _check_files(self) -> None:
        try:
            if self.owner.check_files():
                self._close_django_connection()
        except Exception:
            logger.exception("configuration file check failed")

    @staticmethod
    def _close_django_connection() -> None:
        # This thread's own Django connection, opened by a watcher reload: never kept open,
        # so a test database can be dropped and idle processes hold one connection only.
        connections["default"].close()


config = Config()
