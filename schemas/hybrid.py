"""A hybrid migration split in two: its schema part (a node of its own) and its data part (the migration itself).

The declaration: a migration that declares `migration_type = "hybrid"` and whose operations are schema operations
first, then data operations (RunPython / RunSQL) to the end, is split when the graph is loaded (a migration that
is only inferred hybrid, RunPython beside schema operations without the declaration, is not: the project's
existing migrations keep their one node and run whole in the data phase):

  * `<name>__schema` (type `schema`), a node of its own with the migration's dependencies, runs the schema
    operations against the database (a SeparateDatabaseAndState with no state operations): it runs in the
    schema phase of a rollout, with the other schema migrations, and is recorded like them (django_migrations
    row and ledger row);
  * the migration itself then depends on it and keeps the schema operations as state only, so it changes only
    rows: it runs in the data phase, alone, one transaction per schema, outside any ALTER TABLE's lock.

Where the migration was applied whole (before the split, or by stock `migrate`), its schema part counts as
applied too (`Graph.replacements`, as for a squashed node), so nothing is planned twice; rolling back past the
migration unapplies both parts (the data part's reverse operations, then the schema part's). A hybrid whose
operations interleave (a schema operation after a data one), or that is not atomic, is not split: it runs whole
in the data phase. Between the phases stock `migrate` would apply the whole migration again: finish a split
rollout with `rollout`.
"""

from __future__ import annotations

from django.db import migrations
from django.db.migrations.operations import RunPython, RunSQL, SeparateDatabaseAndState

SUFFIX = "__schema"
DATA_OPERATIONS = (RunPython, RunSQL)


def part_name(name: str) -> str:
    return f"{name}{SUFFIX}"


def is_schema_part(key) -> bool:
    return key[1].endswith(SUFFIX)


def split_point(migration) -> int | None:
    """Index of the first data operation when the migration is schema operations then data operations only."""
    operations = list(migration.operations)
    first = next((i for i, op in enumerate(operations) if isinstance(op, DATA_OPERATIONS)), None)
    if not first or not getattr(migration, "atomic", True):
        return None  # no data operation, only data operations, or not atomic: not split
    if not all(isinstance(op, DATA_OPERATIONS) for op in operations[first:]):
        return None  # a schema operation after a data one: the order matters, the migration runs whole
    return first


def split_hybrids(graph, *, hybrid_type) -> None:
    """Split every splittable hybrid migration of `graph` (a schemas.graph.Graph) in place."""
    loader = graph.loader
    django_graph = loader.graph
    for key in list(django_graph.nodes):
        migration = django_graph.nodes[key]
        if is_schema_part(key) or getattr(type(migration), "migration_type", None) != hybrid_type:
            continue  # only a migration that declares itself hybrid is split
        cut = split_point(migration)
        if cut is None:
            continue
        schema_ops, data_ops = list(migration.operations[:cut]), list(migration.operations[cut:])
        part_key = (key[0], part_name(key[1]))
        # A class in the migration's own module: the ledger's checksum of the part is the file's.
        part_class = type("Migration", (migrations.Migration,), {
            "__module__": type(migration).__module__,
            "dependencies": list(migration.dependencies),
            "operations": [SeparateDatabaseAndState(database_operations=schema_ops, state_operations=[])],
            "migration_type": "schema",
            "hybrid_part_of": key,
        })
        part = part_class(part_key[1], key[0])
        django_graph.add_node(part_key, part)
        for parent in django_graph.node_map[key].parents:
            django_graph.add_dependency(part, part_key, parent.key)
        django_graph.add_dependency(migration, key, part_key)
        migration.migration_type = hybrid_type
        migration.operations = [SeparateDatabaseAndState(database_operations=[], state_operations=schema_ops),
                                *data_ops]
        migration.dependencies = [*migration.dependencies, part_key]
        migration.hybrid_schema_part = part_key
        graph.nodes.add(part_key)
        graph.replacements[part_key] = [key]  # applied whole means its schema part is applied too
