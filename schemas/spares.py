"""Spare schemas: migrated ahead of need (the tenants app's sign-up pool), nobody's yet.

They are real schemas with real ledger rows, recorded when they were built so
that a schema's history starts at its first migration wherever it ends up.
Until one becomes a tenant's (a rename, after which its rows carry the new
name), they are spare capacity: the ledger lists, the matrix and the status
reports leave them out by default and count them on one line instead,
"pool: 2 ready, 1 stale".

The app that keeps them says how to recognise and count them, so this app
never imports it: `spare_schemas_register(label="pool", prefix="_pool_",
count=...)` from its AppConfig.ready().
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SpareSchemas:
    label: str
    prefix: str
    count: Callable[[], tuple[int, int]]  # (ready, stale)


@dataclass(frozen=True)
class SpareCount:
    label: str
    ready: int
    stale: int

    @property
    def summary(self) -> str:
        return f"{self.label}: {self.ready} ready, {self.stale} stale"

    def as_dict(self) -> dict:
        return {"ready": self.ready, "stale": self.stale, "summary": self.summary}


_registry: dict[str, SpareSchemas] = {}


def spare_schemas_register(*, label: str, prefix: str, count: Callable[[], tuple[int, int]]) -> None:
    """Declare schemas whose names start with `prefix` as spare; `count()` returns (ready, stale)."""
    if not prefix:
        raise ValueError("A spare-schema prefix cannot be empty: it would hide every schema.")
    _registry[label] = SpareSchemas(label=label, prefix=prefix, count=count)


def spare_prefixes() -> tuple[str, ...]:
    return tuple(spare.prefix for spare in _registry.values())


def spare_counts() -> list[SpareCount]:
    """One count per registered kind of spare schema (today: the tenants' pool)."""
    return [SpareCount(spare.label, *spare.count()) for spare in _registry.values()]
