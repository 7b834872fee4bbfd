"""`sqlmigration`: a SQL file becomes a reversible Django migration; malformed files are refused by line."""

import re
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


# -- transaction control and the trial run (issue 14.8), file encoding (14.5) -------------------------------

HEAD = "-- version: 7\n-- name: escape\n-- type: schema\n"


def _tables_named(name):
    """Schemas holding a table `name`, read on a connection of its own: what really got committed."""
    import psycopg

    from tests.conftest import connection_params

    with psycopg.connect(**connection_params(), autocommit=True) as other:
        rows = other.execute("SELECT schemaname FROM pg_tables WHERE tablename = %s", [name]).fetchall()
    return sorted(row[0] for row in rows)


@pytest.fixture
def escape_table_cleanup():
    """Drop probe_escape wherever a broken trial committed it, so one failure cannot spoil later runs."""
    yield
    from django.db import connection

    with connection.cursor() as cursor:
        for schema in _tables_named("probe_escape"):
            cursor.execute(f'DROP TABLE "{schema}".probe_escape')


TRANSACTION_CONTROL = {
    "COMMIT starting up": (HEAD + "-- up:\nCOMMIT;\nCREATE TABLE probe_escape (id int);\n-- down:\n"
                           "DROP TABLE probe_escape;\n", "line 5: COMMIT"),
    "BEGIN and COMMIT around up": (HEAD + "-- up:\nBEGIN;\nCREATE TABLE probe_escape (id int);\n  commit ;\n"
                                   "-- down:\nDROP TABLE probe_escape;\n", "line 5: BEGIN"),
    "ROLLBACK in down": (HEAD + "-- up:\nCREATE TABLE probe_escape (id int);\n-- down:\n"
                         "DROP TABLE probe_escape;\n/* undo */ ROLLBACK;\n", "line 8: ROLLBACK"),
    "END after a comment": (HEAD + "-- up:\nCREATE TABLE probe_escape (id int);\n-- done\nEND;\n-- down:\n"
                            "DROP TABLE probe_escape;\n", "line 7: END"),
    "START TRANSACTION": (HEAD + "-- up:\nSTART TRANSACTION ISOLATION LEVEL SERIALIZABLE;\n"
                          "CREATE TABLE probe_escape (id int);\n-- down:\nDROP TABLE probe_escape;\n",
                          "line 5: START TRANSACTION"),
    "SAVEPOINT": (HEAD + "-- up:\nCREATE TABLE probe_escape (id int);\nSAVEPOINT s1;\n-- down:\n"
                  "DROP TABLE probe_escape;\n", "line 6: SAVEPOINT"),
    "ABORT": (HEAD + "-- up:\nCREATE TABLE probe_escape (id int); ABORT;\n-- down:\nDROP TABLE probe_escape;\n",
              "line 5: ABORT"),
}


@pytest.mark.parametrize("case", TRANSACTION_CONTROL)
def test_transaction_control_in_a_sql_file_is_refused_with_its_line(probe, tmp_path, case, escape_table_cleanup):
    text, message = TRANSACTION_CONTROL[case]
    source = tmp_path / "escape.sql"
    source.write_text(text)
    before = sorted(p.name for p in probe.migrations.glob("*.py"))

    with pytest.raises(CommandError) as refused:
        sqlmigration("courtside_probe", "--from", str(source))

    assert str(refused.value).startswith(f"{source}, {message}"), str(refused.value)
    assert "transaction" in str(refused.value)
    assert sorted(p.name for p in probe.migrations.glob("*.py")) == before
    assert _tables_named("probe_escape") == []
    with pytest.raises(CommandError, match=message):  # the format check refuses it, trial or not
        sqlmigration("courtside_probe", "--from", str(source), "--no-verify")


def test_commit_inside_a_string_a_comment_or_a_function_body_is_not_refused(probe, tmp_path,
                                                                           escape_table_cleanup):
    source = tmp_path / "notes.sql"
    source.write_text(
        HEAD + "-- up:\n"
        "-- COMMIT; is only a word in this comment\n"
        "CREATE TABLE probe_escape (id int, note text DEFAULT 'COMMIT; ROLLBACK;');\n"
        "/* BEGIN; END; */\n"
        "CREATE PROCEDURE probe_escape_flush() LANGUAGE plpgsql AS $body$\n"
        "BEGIN\n  INSERT INTO probe_escape VALUES (1, 'x');\n  COMMIT;\nEND\n$body$;\n"
        "-- down:\nDROP PROCEDURE probe_escape_flush();\nDROP TABLE probe_escape;\n"
    )

    output = sqlmigration("courtside_probe", "--from", str(source))

    assert "Wrote " in output and probe.path("0002_escape").exists()
    assert _tables_named("probe_escape") == []  # the trial kept nothing


def test_the_trial_keeps_nothing_even_when_a_statement_slips_past_the_format_check(probe_db, escape_table_cleanup):
    """verify() on its own, with SQL the parser never saw: the trial run itself must not be able to commit."""
    from django.core.exceptions import ValidationError

    from schemas.sqlfiles import SqlFile, SqlSection, verify

    def trial(up: str):
        sql_file = SqlFile(path="slipped.sql", version="1", name="slipped", type="schema", description="",
                           up=SqlSection(sql=up, first_line=10), down=SqlSection(sql="SELECT 1;\n", first_line=20))
        with pytest.raises(ValidationError) as refused:
            verify(sql_file, app_label="courtside_probe", schema_name="lakers")
        return str(refused.value.messages[0])

    assert "line 11" in trial("CREATE TABLE probe_escape (id int);\nCOMMIT;\n")
    assert "line 10" in trial("ROLLBACK;\nCREATE TABLE probe_escape (id int);\n")
    assert _tables_named("probe_escape") == []


def test_session_state_the_trial_takes_does_not_outlive_it(probe_db):
    """A session-level advisory lock (or SET, PREPARE) survives a ROLLBACK; the trial's own connection does not."""
    from schemas.sqlfiles import SqlFile, SqlSection, verify

    sql_file = SqlFile(path="lock.sql", version="1", name="lock", type="schema", description="",
                       up=SqlSection(sql="SELECT pg_advisory_lock(734001);\n", first_line=5),
                       down=SqlSection(sql="SELECT 1;\n", first_line=7))
    verify(sql_file, app_label="courtside_probe", schema_name="lakers")

    import psycopg

    from tests.conftest import connection_params

    with psycopg.connect(**connection_params(), autocommit=True) as other:
        held = other.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 734001").fetchone()
    assert held == (0,)


def test_a_file_that_is_not_utf8_is_refused_with_its_line(probe_db, tmp_path):
    source = tmp_path / "latin1.sql"
    source.write_bytes((HEAD + "-- up:\nCREATE TABLE probe_note (label text DEFAULT 'caf\xe9');\n-- down:\n"
                        "DROP TABLE probe_note;\n").encode("latin-1"))

    with pytest.raises(CommandError, match=rf"^{re.escape(str(source))}, line 5: not UTF-8 text"):
        sqlmigration("courtside_probe", "--from", str(source))

    up, down = tmp_path / "up.sql", tmp_path / "down.sql"
    up.write_text("CREATE TABLE probe_note (id int);\n")
    down.write_bytes(b"-- \xff\nDROP TABLE probe_note;\n")
    with pytest.raises(CommandError, match=rf"^{re.escape(str(down))}, line 1: not UTF-8 text"):
        sqlmigration("courtside_probe", name="note", up=str(up), down=str(down))


def test_an_edit_to_the_source_sql_after_generation_is_drift(probe, tmp_path):
    """The .sql a migration was generated from is checksummed with it: editing the SQL later is drift too."""
    from schemas.services import drift_report

    rollout()
    source = tmp_path / "002_colour.sql"
    source.write_text(GOOD)
    sqlmigration("courtside_probe", "--from", str(source))
    rollout()
    clean = drift_report(schemas=["lakers", "warriors"], include_public=False)
    assert clean.changed_files == [] and not clean.problem_schemas

    source.write_text(GOOD.replace("'gold'", "'silver'"))  # the migration .py is untouched

    report = drift_report(schemas=["lakers", "warriors"], include_public=False)
    [entry] = report.changed_files
    assert (entry["app"], entry["name"]) == ("courtside_probe", "0002_add_gadget_colour")
    assert entry["schemas"] == ["lakers", "warriors"]
    assert str(source.resolve()) in entry["sources"]
    out = StringIO()
    call_command("migration_status", schema=["lakers", "warriors"], stdout=out)
    assert f"source {source.resolve()}" in out.getvalue()

    source.write_text(GOOD)  # put back as generated: clean again
    assert drift_report(schemas=["lakers", "warriors"], include_public=False).changed_files == []
