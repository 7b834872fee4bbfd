"""A rollout's AddField of a NOT NULL column with a default: the column ends as Django's own, by cheaper statements.

PostgreSQL scans all of pg_depend for `ADD COLUMN ... DEFAULT` (find_composite_type_dependencies), which grows
with every schema of the database; the rollout adds such a column without a DEFAULT where the table is empty
or small (schemas/schema_editor.py). These tests run real rollouts over two tenant schemas and compare the
column with the one Django's stock schema editor makes in a scratch schema.
"""

import re
from contextlib import contextmanager
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.backends.postgresql.schema import DatabaseSchemaEditor
from django.db.migrations.state import ProjectState

from schemas import schema_editor

from .conftest import TABLE

ADD_SIZE = """
    from django.db import migrations, models


    class Migration(migrations.Migration):
        dependencies = [("courtside_probe", "0001_initial")]
        operations = [migrations.AddField("gadget", "size", models.IntegerField(default=7))]
"""
ADD_COLOUR = """
    from django.db import migrations, models


    class Migration(migrations.Migration):
        dependencies = [("courtside_probe", "0002_gadget_size")]
        operations = [migrations.AddField("gadget", "colour", models.CharField(max_length=20, default="blue"))]
"""
COLUMNS = ("SELECT column_name, data_type, character_maximum_length, is_nullable, column_default "
           "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position")
ADD_WITH_DEFAULT = re.compile(r"ADD COLUMN .* DEFAULT", re.IGNORECASE)


def rollout() -> None:
    call_command("rollout", workers=1, stdout=StringIO(), stderr=StringIO())  # in this process: its statements


def columns(schema: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(COLUMNS, [schema, TABLE])
        return cursor.fetchall()


@contextmanager
def statements():
    seen: list[str] = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


@pytest.fixture
def stock_columns(probe):
    """The columns Django's stock schema editor makes for the same migrations, in a scratch schema."""
    from django.db.migrations.loader import MigrationLoader

    def make(*names: str) -> list[tuple]:
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA IF EXISTS probe_stock CASCADE; CREATE SCHEMA probe_stock")
        loader = MigrationLoader(connection, ignore_no_migrations=True)
        state = ProjectState()
        connection.set_schema("probe_stock", include_public=True)
        try:
            for name in ("0001_initial", *names):
                migration = loader.get_migration("courtside_probe", name)
                with DatabaseSchemaEditor(connection) as editor:
                    state = migration.apply(state, editor)
        finally:
            connection.set_schema_to_public()
        return columns("probe_stock")

    yield make
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA IF EXISTS probe_stock CASCADE")


def test_the_added_column_ends_as_djangos_own_in_an_empty_a_small_and_a_large_table(probe, stock_columns,
                                                                                  monkeypatch):
    rollout()  # 0001: the gadget table in both schemas
    probe.execute("warriors", "INSERT INTO courtside_probe_gadget (name) VALUES ('ball'), ('net'), ('hoop')")
    probe.write("0002_gadget_size", ADD_SIZE)

    rollout()  # lakers: an empty table; warriors: 3 rows, a small one

    expected = stock_columns("0002_gadget_size")
    assert [c for c in expected if c[0] == "size"] == [("size", "integer", None, "NO", None)]
    assert columns("lakers") == expected
    assert columns("warriors") == expected
    with connection.cursor() as cursor:
        cursor.execute('SELECT name, size FROM warriors.courtside_probe_gadget ORDER BY name')
        assert cursor.fetchall() == [("ball", 7), ("hoop", 7), ("net", 7)]

    monkeypatch.setattr(schema_editor, "BACKFILL_MAX_ROWS", 2)  # warriors' 3 rows now make a large table
    probe.write("0003_gadget_colour", ADD_COLOUR)
    rollout()

    expected = stock_columns("0002_gadget_size", "0003_gadget_colour")
    assert [c for c in expected if c[0] == "colour"] == [("colour", "character varying", 20, "NO", None)]
    assert columns("lakers") == expected
    assert columns("warriors") == expected
    with connection.cursor() as cursor:
        cursor.execute('SELECT DISTINCT colour FROM warriors.courtside_probe_gadget')
        assert cursor.fetchall() == [("blue",)]
    # NOT NULL with no default left: a row that names no size is refused, as under Django's own column.
    with pytest.raises(Exception, match="null value in column"):
        probe.execute("lakers", "INSERT INTO courtside_probe_gadget (name, colour) VALUES ('x', 'red')")


def test_an_empty_or_small_table_gets_the_column_without_a_default_a_large_one_djangos_statements(probe,
                                                                                                monkeypatch):
    rollout()
    probe.execute("warriors", "INSERT INTO courtside_probe_gadget (name) VALUES ('ball'), ('net'), ('hoop')")
    probe.write("0002_gadget_size", ADD_SIZE)

    with statements() as seen:
        rollout()

    adds = [s for s in seen if "ADD COLUMN" in s.upper()]
    assert len(adds) == 2  # one per schema
    assert not [s for s in adds if ADD_WITH_DEFAULT.search(s)], adds  # the statement PostgreSQL scans pg_depend for
    assert any(s.startswith("UPDATE") for s in seen)  # warriors' three rows, filled

    monkeypatch.setattr(schema_editor, "BACKFILL_MAX_ROWS", 2)
    probe.write("0003_gadget_colour", ADD_COLOUR)
    with statements() as seen:
        rollout()

    adds = [s for s in seen if "ADD COLUMN" in s.upper()]
    assert len([s for s in adds if ADD_WITH_DEFAULT.search(s)]) == 1  # warriors, past the threshold: Django's own
