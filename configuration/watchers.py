"""Watchers of keys and the config_changed signal: called once per change of a watched view's value."""

from __future__ import annotations

import copy
import logging
import threading

from configuration import layers
from configuration.masking import mask
from configuration.signals import config_changed

logger = logging.getLogger("configuration")


class Watch:
    """A registered watcher; cancel() stops it."""

    def __init__(self, owner: Watchers, key: str, callback, scope: str):
        self.owner, self.key, self.callback, self.scope = owner, key, callback, scope

    def cancel(self) -> None:
        self.owner.cancel(self)


class Watchers:
    """The process's watchers and, per watched view, the flat values they last saw.

    `snapshot_of(scope)` is the store's reader of a view (passed in, so this
    module sits below the store).
    """

    def __init__(self, snapshot_of):
        self.snapshot_of = snapshot_of
        self.lock = threading.RLock()
        self.watchers: list[Watch] = []
        self.baselines: dict[str, dict] = {}

    def __bool__(self) -> bool:
        return bool(self.watchers or self.baselines)

    def add(self, key: str, callback, scope: str) -> Watch:
        with self.lock:
            if scope not in self.baselines:
                self.baselines[scope] = self.snapshot_of(scope).flat
            watcher = Watch(self, key, callback, scope)
            self.watchers.append(watcher)
        return watcher

    def cancel(self, watcher: Watch) -> None:
        with self.lock:
            if watcher in self.watchers:
                self.watchers.remove(watcher)
            if not any(w.scope == watcher.scope for w in self.watchers) and not (
                watcher.scope == layers.PUBLIC and config_changed.has_listeners()
            ):
                self.baselines.pop(watcher.scope, None)

    def clear(self) -> None:
        with self.lock:
            self.watchers.clear()
            self.baselines.clear()

    def note_public(self, flat: dict) -> None:
        """The operator view's first snapshot is the baseline of config_changed's receivers."""
        if layers.PUBLIC not in self.baselines and config_changed.has_listeners():
            with self.lock:
                self.baselines.setdefault(layers.PUBLIC, flat)

    def check(self) -> None:
        """Compare each watched view with what its watchers last saw; call back for what changed."""
        with self.lock:
            for scope in list(self.baselines):
                old = self.baselines[scope]
                snapshot = self.snapshot_of(scope)
                new = snapshot.flat
                if new == old:
                    continue
                self.baselines[scope] = new
                changed = sorted(
                    key for key in set(old) | set(new)
                    if not isinstance(old.get(key), dict) and not isinstance(new.get(key), dict)
                    and old.get(key, layers._MISSING) != new.get(key, layers._MISSING)
                )
                secret_keys = snapshot.secret_keys
                for key in changed:
                    logger.info("configuration %s changed in %s: %r -> %r", key, scope,
                                mask(key, old.get(key), secret_keys), mask(key, new.get(key), secret_keys))
                    config_changed.send(sender=Watchers, key=key, old=old.get(key), new=new.get(key), tenant=scope)
                for watcher in [w for w in self.watchers if w.scope == scope]:
                    before, after = old.get(watcher.key), new.get(watcher.key)
                    if before != after:
                        try:
                            watcher.callback(watcher.key, copy.deepcopy(before), copy.deepcopy(after))
                        except Exception:  # one broken watcher must not starve the others
                            logger.exception("configuration watcher of %s failed", watcher.key)
