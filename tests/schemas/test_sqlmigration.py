"""`sqlmigration`: a SQL file becomes a reversible Django migration; malformed files are refused by line."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from schemas.models import MigrationRecord

GOOD = """\
-- version: 002
-- name: add_gadget_colour
-- type: schema
-- description: Colour of a gadget, for the shop window.
-- up:
ALTER TABLE courtside_probe_gadget ADD COLUMN colour varchar(20) NOT NULL DEFAULT 'gold';
CREATE INDEX probe_gadget_colour ON courtside_probe_gadget (colour);
-- down:
DROP INDEX probe_gadget_colour;
ALTER TABLE courtside_probe_gadget DROP COLUMN colour;
"""


def sqlmigration(*args, **options):
    out = StringIO()
    call_command("sqlmigration", *args, stdout=out, **options)
    return out.getvalue()


def rollout(*args, **options):
    call_command("rollout", *args, stdout=StringIO(), stderr=StringIO(), **options)


def test_a_sql_file_becomes_a_migration_that_applies_and_reverses_in_every_tenant(probe, tmp_path):
    call_command("rollout", stdout=StringIO(), stderr=StringIO())
    source = tmp_path / "002_colour.sql"
    source.write_text(GOOD)

    output = sqlmigration("courtside_probe", "--from", str(source))

    written = probe.path("0002_add_gadget_colour")
    assert f"Wrote {written}" in output
    text = written.read_text()
    assert "migrations.RunSQL(" in text and "reverse_sql=" in text
    assert '("courtside_probe", "0001_initial")' in text.replace("'", '"')
    assert probe.columns("lakers") == {"id", "name"}  # trying the SQL left nothing behind

    rollout()
    for schema in ("lakers", "warriors"):
        assert probe.columns(schema) == {"id", "name", "colour"}
    assert MigrationRecord.objects.filter(name="0002_add_gadget_colour", outcome="applied").count() == 2

    rollout("courtside_probe.0001_initial")
    for schema in ("lakers", "warriors"):
        assert probe.columns(schema) == {"id", "name"}
        assert probe.applied(schema) == {"0001_initial"}
    assert MigrationRecord.objects.filter(name="0002_add_gadget_colour", outcome="undone").count() == 2


def test_separate_up_and_down_files_work_too(probe, tmp_path):
    rollout()
    (tmp_path / "up.sql").write_text("ALTER TABLE courtside_probe_gadget ADD COLUMN weight int;\n")
    (tmp_path / "down.sql").write_text("ALTER TABLE courtside_probe_gadget DROP COLUMN weight;\n")

    sqlmigration("courtside_probe", name="add_weight", up=str(tmp_path / "up.sql"),
                 down=str(tmp_path / "down.sql"))
    rollout()

    assert probe.columns("warriors") == {"id", "name", "weight"}


MALFORMED = {
    "down before up": ("-- version: 1\n-- name: x\n-- type: schema\n-- down:\nSELECT 1;\n",
                       "line 4: '-- down:' comes before '-- up:'"),
    "no up section": ("-- version: 1\n-- name: x\n-- type: schema\n-- description: nothing\n",
                      "line 4: no SQL in an '-- up:' section"),
    "empty up": ("-- version: 1\n-- name: x\n-- type: schema\n-- up:\n\n-- down:\nSELECT 1;\n",
                 "line 4: no SQL in an '-- up:' section"),
    "no down": ("-- version: 1\n-- name: x\n-- type: schema\n-- up:\nSELECT 1;\n",
                "line 5: no SQL in a '-- down:' section"),
    "unknown type": ("-- version: 1\n-- name: x\n-- type: schemata\n-- up:\nSELECT 1;\n-- down:\nSELECT 1;\n",
                     "line 3: unknown type 'schemata'"),
    "missing header": ("-- version: 1\n-- type: schema\n-- up:\nSELECT 1;\n-- down:\nSELECT 1;\n",
                       "line 1: missing header '-- name: ...'"),
    "stray text before up": ("-- version: 1\n-- name: x\n-- type: data\nDELETE FROM t;\n-- up:\nSELECT 1;\n",
                             "line 4: expected a '-- key: value' header line"),
    "SQL PostgreSQL refuses": (
        "-- version: 1\n-- name: x\n-- type: schema\n-- up:\nCREATE TABLE probe_note (id int);\n"
        "CREAT TABLE oops (id int);\n-- down:\nDROP TABLE probe_note;\n",
        "line 6: PostgreSQL refused the up SQL: syntax error at or near \"CREAT\""),
    "down SQL PostgreSQL refuses": (
        "-- version: 1\n-- name: x\n-- type: schema\n-- up:\nCREATE TABLE probe_note (id int);\n-- down:\n"
        "DROP TABLE probe_note;\nDROP TABLE no_such_table;\n",
        "line 8: PostgreSQL refused the down SQL: table \"no_such_table\" does not exist"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_sql_file_is_refused_with_its_line_and_nothing_is_written(probe_db, tmp_path, case):
    text, message = MALFORMED[case]
    source = tmp_path / "bad.sql"
    source.write_text(text)
    before = sorted(p.name for p in probe_db.migrations.glob("*.py"))

    with pytest.raises(CommandError) as refused:
        sqlmigration("courtside_probe", "--from", str(source))

    assert str(refused.value).startswith(f"{source}, {message}")
    assert sorted(p.name for p in probe_db.migrations.glob("*.py")) == before
    assert probe_db.columns("lakers") == set()  # the tried SQL left nothing behind


def test_an_unknown_app_is_refused(probe_db, tmp_path):
    source = tmp_path / "good.sql"
    source.write_text(GOOD)
    with pytest.raises(CommandError, match="No installed app 'nope'"):
        sqlmigration("nope", "--from", str(source))
