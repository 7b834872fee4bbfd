"""The migration matrix reads the catalog of its page's schemas only (issue 19).

At 10,000 schemas the matrix page took 2.2 s (bench/scale.py): `columns_by_schema` for the page's 100 schemas
filtered pg_class by table name and the schemas by name after the join, so PostgreSQL read every schema's tables of
those names (a sequential scan of pg_class: 1.5 million rows there). These tests fail if the pg_class rows it
reads grow when schemas that are not asked about are added, whichever join PostgreSQL picks.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from schemas.selectors import columns_by_schema

TABLES = ["django_migrations", "league_player", "league_team"]


def _add_bare_schemas(count: int, start: int) -> None:
    with connection.cursor() as cursor:
        for i in range(start, start + count):
            cursor.execute(f"CREATE SCHEMA zz_catalog_{i}")
            for table in TABLES:
                cursor.execute(f"CREATE TABLE zz_catalog_{i}.{table} (id int, a int, b text)")
        cursor.execute("ANALYZE pg_class")
        cursor.execute("ANALYZE pg_namespace")


def _pg_class_rows_read(node: dict) -> int:
    here = 0
    if node.get("Relation Name") == "pg_class":
        here = node.get("Actual Rows", 0) * node.get("Actual Loops", 1) + node.get("Rows Removed by Filter", 0)
    return here + sum(_pg_class_rows_read(child) for child in node.get("Plans", []))


def _rows_read_for(schemas: list[str]) -> int:
    with CaptureQueriesContext(connection) as captured:
        columns_by_schema(schemas, TABLES)
    total = 0
    with connection.cursor() as cursor:
        # As the planner joins at 10,000 schemas (a hash join after a scan of pg_class by table name), not as it
        # may at a few dozen, where a nested loop from the namespaces happens to be cheapest.
        cursor.execute("SET enable_nestloop = off")
        try:
            for query in captured.captured_queries:
                if "pg_class" not in query["sql"]:
                    continue
                cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query["sql"])
                plan = cursor.fetchone()[0]
                plan = json.loads(plan) if isinstance(plan, str) else plan
                total += _pg_class_rows_read(plan[0]["Plan"])
        finally:
            cursor.execute("RESET enable_nestloop")
    return total


@pytest.mark.django_db
def test_the_columns_of_two_schemas_read_as_many_pg_class_rows_beside_10_or_200_other_schemas():
    _add_bare_schemas(2, 0)
    _add_bare_schemas(8, 2)
    asked = ["zz_catalog_0", "zz_catalog_1"]
    few = _rows_read_for(asked)

    _add_bare_schemas(190, 10)
    many = _rows_read_for(asked)

    found = columns_by_schema(asked, TABLES)
    assert {schema: sorted(found[schema]) for schema in asked} == {schema: sorted(TABLES) for schema in asked}
    assert many <= few
    # The asked schemas' tables only, never the other schemas' tables of the same names.
    assert many <= 2 * len(asked) * len(TABLES)
