"""The `config` facade: layered, validated configuration with an in-process cache and hot reload.

    from configuration import config
    config.get("cache.ttl_seconds", default=300)     # the current tenant's view inside tenant_context
    config.source_of("cache.ttl_seconds")            # the winning layer: "environment", "tenant", "database"...
    config.flag("new_scoring", tenant=tenant)
    config.variant("score_card", tenant=tenant, user=user)   # an A/B experiment's variant
    config.set("cache.ttl_seconds", 60, changed_by="ops")
    config.watch("cache", lambda key, old, new: ...)

The facade is the top floor of the app: it reads through the store
(configuration/store.py: snapshots built from the layer stack of
configuration/stack.py) and writes through the services
(configuration/services/), which themselves use only the store and the
policy below it. Reads are a dict lookup in the view's snapshot.
"""

from __future__ import annotations

import copy

from configuration import experiments, layers, services
from configuration.flags import evaluate_flag, flag_bucket  # noqa: F401  (re-exported: the flag functions)
from configuration.layers import DELETE, PUBLIC  # noqa: F401  (re-exported: the view and change markers)
from configuration.listener import NOTIFY_CHANNEL  # noqa: F401  (re-exported)
from configuration.masking import is_secret, mask
from configuration.store import Snapshot, Store, store

_MISSING = layers._MISSING


class Config:
    """The process-wide configuration; one instance, `configuration.config`.

    Reads, writes and watches are here; anything else (invalidate, reload,
    check_files, listener_ready, stop_listener...) is the store's, reached
    through this object.
    """

    def __init__(self, backing: Store):
        self._store = backing

    def __getattr__(self, name):
        return getattr(self._store, name)

    # ------------------------------------------------------------------ reads
    def get(self, key: str, default=None, *, tenant=None, cast=None):
        """The effective value of a dotted key in the current (or given) tenant's view."""
        backing = self._store
        scope = tenant if type(tenant) is str else backing.scope(tenant)
        snapshot = backing.snapshots.get(scope)
        if snapshot is None:
            snapshot = backing.load(scope)
        value = snapshot.flat.get(key, _MISSING)
        if value is _MISSING:
            return default
        if type(value) is dict or type(value) is list:
            value = copy.deepcopy(value)  # a caller's edit must not change the shared snapshot
        return cast(value) if cast is not None else value

    def source_of(self, key: str, *, tenant=None) -> str | None:
        """The layer that won for the key (its name in configuration/stack.py)."""
        return self._store.snapshot(tenant).sources.get(key)

    def explain(self, key: str, *, tenant=None, masked: bool = True) -> dict:
        """The effective value, the winning layer and what each layer holds for the key."""
        snapshot = self._store.snapshot(tenant)
        value = snapshot.flat.get(key, _MISSING)
        per_layer = []
        for name, tree in snapshot.layer_trees:
            layer_value = layers.get_path(tree, key, _MISSING)
            if layer_value is not _MISSING:
                per_layer.append({"layer": name, "value": _shown(key, layer_value, snapshot, masked)})
        return {
            "key": key,
            "exists": value is not _MISSING,
            "value": None if value is _MISSING else _shown(key, value, snapshot, masked),
            "source": snapshot.sources.get(key),
            "secret": self.is_secret(key, tenant=tenant),
            "layers": per_layer,
        }

    def as_dict(self, *, tenant=None, masked: bool = False) -> dict:
        snapshot = self._store.snapshot(tenant)
        tree = copy.deepcopy(snapshot.tree)
        return mask("", tree, snapshot.secret_keys) if masked else tree

    def effective(self, *, tenant=None, masked: bool = True) -> list[dict]:
        """Every leaf key with its value and winning layer, sorted: the admin's and the API's listing."""
        snapshot = self._store.snapshot(tenant)
        return [
            {"key": key, "value": _shown(key, value, snapshot, masked), "source": snapshot.sources.get(key),
             "secret": is_secret(key, snapshot.secret_keys)}
            for key, value in sorted(layers.leaves(snapshot.tree).items())
        ]

    def is_secret(self, key: str, *, tenant=None) -> bool:
        return self._store.is_secret(key, tenant=tenant)

    def mask(self, key: str, value, *, tenant=None):
        return mask(key, value, self._store.snapshot(tenant).secret_keys)

    def snapshot(self, tenant=None) -> Snapshot:
        return self._store.snapshot(tenant)

    def validate(self, *, tenant=None) -> list[str]:
        """Every error: unreadable or invalid files, and every schema violation of the effective view."""
        return self._store.validate(tenant=tenant)

    def flag(self, name: str, tenant=None) -> bool:
        """Whether a feature flag is on for a tenant (the current one by default)."""
        backing = self._store
        scope = tenant if type(tenant) is str else backing.scope(tenant)
        snapshot = backing.snapshots.get(scope) or backing.load(scope)
        decision = snapshot.flags.get(name)
        if decision is None:
            decision = evaluate_flag(name, snapshot.flat.get(f"flags.{name}", False), scope)
            snapshot.flags[name] = decision
        return decision

    def variant(self, name: str, tenant=None, *, user=None) -> str | None:
        """The variant of experiment `name` for a tenant (and a user, when given), counted as an exposure.

        None when there is no such experiment; the control when it is off (killed) or in the operator's view.
        """
        backing = self._store
        scope = tenant if type(tenant) is str else backing.scope(tenant)
        snapshot = backing.snapshots.get(scope) or backing.load(scope)
        found = snapshot.variants.get((name, user))
        if found is None:
            found = experiments.decide(snapshot, name, scope, user)
        if found[1] is not None:
            next(found[1])  # the exposure, counted in memory; written in batches
        return found[0]

    def schemas(self) -> dict:
        """{key: {"schema", "secret", "tenant_editable", "description", "origin"}}: code, then database rows."""
        return self._store.schemas()

    def tenant_editable(self, key: str) -> bool:
        """Tenant admins may override the key: a schema at or above it allows it."""
        return self._store.tenant_editable(key)

    # ----------------------------------------------------------------- writes
    def set(self, key: str, value, *, tenant=None, secret=None, changed_by: str = "code", source: str = "code"):
        """Persist a runtime value (database layer, or a tenant's override); validated, with history."""
        return services.entry_set(key=key, value=value, tenant=tenant, secret=secret, changed_by=changed_by,
                                  source=source)

    def delete(self, key: str, *, tenant=None, changed_by: str = "code", source: str = "code") -> None:
        services.entry_delete(key=key, tenant=tenant, changed_by=changed_by, source=source)

    # ---------------------------------------------------------------- watches
    def watch(self, key: str, callback, *, tenant=None):
        """Call callback(key, old, new) once per change of the key's value (a namespace: any key under it)."""
        return self._store.watch(key, callback, tenant=tenant)


def _shown(key, value, snapshot, masked):
    return mask(key, value, snapshot.secret_keys) if masked else copy.deepcopy(value)


config = Config(store)
