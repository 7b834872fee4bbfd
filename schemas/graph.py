"""The migration graph read once from disk, and the SHA-256 of each migration file."""

from __future__ import annotations

import hashlib
import importlib
import os
import sys
from dataclasses import dataclass, field
from functools import cached_property

from django.conf import settings
from django.db.migrations.loader import MigrationLoader

from schemas.hybrid import split_hybrids

Key = tuple[str, str]

# (path, mtime_ns, size) -> digest: a no-op check over many schemas hashes each file once.
_CHECKSUM_CACHE: dict[tuple[str, int, int], str] = {}


def file_checksum(path: str | None) -> str:
    """SHA-256 of a file's bytes, or "" when it cannot be read."""
    if not path:
        return ""
    try:
        stat = os.stat(path)
    except OSError:
        return ""
    cache_key = (path, stat.st_mtime_ns, stat.st_size)
    if cache_key not in _CHECKSUM_CACHE:
        with open(path, "rb") as handle:
            _CHECKSUM_CACHE[cache_key] = hashlib.sha256(handle.read()).hexdigest()
    return _CHECKSUM_CACHE[cache_key]


def migration_checksum(migration) -> str:
    """SHA-256 of a migration's file; for a SQL-file migration, of its file and the .sql file(s) it came from.

    `sqlmigration` names its sources in `sql_file_sources`: an edit to the SQL
    after generation changes the checksum, so it is drift like an edit to the
    migration itself. A source that is gone counts as changed, too.
    """
    digest = file_checksum(migration_path(migration))
    sources = getattr(migration, "sql_file_sources", None) or ()
    if not digest or not sources:
        return digest
    parts = [digest, *(f"{path}:{file_checksum(path) or 'missing'}" for path in sources)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def migration_path(migration) -> str | None:
    module = sys.modules.get(type(migration).__module__)
    path = getattr(module, "__file__", None)
    if path and path.endswith(".pyc"):
        source = importlib.util.source_from_cache(path) if "__pycache__" in path else None
        path = source if source and os.path.exists(source) else path
    return path


@dataclass
class Graph:
    """What the code on disk says: every migration node, its file and checksum, and the apps per schema kind."""

    loader: MigrationLoader
    nodes: set[Key] = field(default_factory=set)
    replacements: dict[Key, list[Key]] = field(default_factory=dict)

    def path(self, key: Key) -> str | None:
        migration = self.loader.disk_migrations.get(key) or self.loader.graph.nodes.get(key)
        return migration_path(migration) if migration is not None else None

    def checksum(self, key: Key) -> str:
        migration = self.loader.disk_migrations.get(key) or self.loader.graph.nodes.get(key)
        return migration_checksum(migration) if migration is not None else ""

    def sources(self, key: Key) -> list[str]:
        """The .sql file(s) a SQL-file migration was generated from (checksummed with it); else none."""
        migration = self.loader.disk_migrations.get(key) or self.loader.graph.nodes.get(key)
        return list(getattr(migration, "sql_file_sources", None) or ())

    def known(self) -> set[Key]:
        """Nodes plus the migrations a squashed migration replaced: neither is a 'file gone'."""
        known = set(self.nodes)
        for replaced in self.replacements.values():
            known.update(replaced)
        return known

    def effective_applied(self, applied: set[Key]) -> set[Key]:
        """Applied set as the graph sees it: a squashed node counts as applied when all it replaces are."""
        effective = set(applied)
        for key, replaced in self.replacements.items():
            if key not in effective and replaced and all(r in applied for r in replaced):
                effective.add(key)
        return effective

    @cached_property
    def ordered(self) -> list[Key]:
        """Every node in an order that respects dependencies, computed once."""
        order: dict[Key, None] = {}
        for leaf in sorted(self.loader.graph.leaf_nodes()):
            for key in self.loader.graph.forwards_plan(leaf):
                order.setdefault(key, None)
        return list(order)

    def pending(self, applied: set[Key]) -> list[Key]:
        effective = self.effective_applied(applied)
        return [key for key in self.ordered if key not in effective]

    def latest_by_app(self) -> dict[str, str]:
        return {app: name for app, name in self.loader.graph.leaf_nodes()}

    def type_of(self, key: Key) -> str:
        """schema, data or hybrid (MIGRATION_TYPES): see migration_type()."""
        migration = self.loader.graph.nodes.get(key) or self.loader.disk_migrations.get(key)
        return migration_type(migration) if migration is not None else SCHEMA


SCHEMA, DATA, HYBRID = "schema", "data", "hybrid"
MIGRATION_TYPES = (SCHEMA, DATA, HYBRID)


def migration_type(migration) -> str:
    """What the migration declares (`migration_type`, or `sql_file_type` from `sqlmigration`), else what its
    operations are: only RunPython is data, RunPython beside schema operations is hybrid, anything else schema."""
    from django.db.migrations.operations import RunPython

    declared = getattr(migration, "migration_type", None) or getattr(migration, "sql_file_type", None)
    if declared in MIGRATION_TYPES:
        return declared
    operations = list(getattr(migration, "operations", []))
    python = [op for op in operations if isinstance(op, RunPython)]
    if not python:
        return SCHEMA
    return DATA if len(python) == len(operations) else HYBRID


def load_graph() -> Graph:
    """Load the graph from disk without touching the database (applied state is read separately)."""
    importlib.invalidate_caches()  # files written or deleted a moment ago are seen
    loader = MigrationLoader(None, ignore_no_migrations=True)
    replacements = {key: list(migration.replaces) for key, migration in loader.replacements.items()}
    graph = Graph(loader=loader, nodes=set(loader.graph.nodes), replacements=replacements)
    split_hybrids(graph, hybrid_type=HYBRID)  # a hybrid's schema part runs in the schema phase (schemas/hybrid.py)
    return graph


def apps_for(schema_name: str) -> list[str]:
    """App labels whose tables live in this schema (SHARED_APPS for public, TENANT_APPS otherwise)."""
    from django.apps import apps

    names = settings.SHARED_APPS if schema_name == settings.PUBLIC_SCHEMA_NAME else settings.TENANT_APPS
    labels = []
    for config in apps.get_app_configs():
        full = f"{config.__module__}.{config.__class__.__name__}"
        if config.name in names or full in names:
            labels.append(config.label)
    return labels
