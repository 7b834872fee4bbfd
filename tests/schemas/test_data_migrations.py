"""Data migrations run after the schema migrations of a rollout, each in its own transaction per schema (never
inside a schema change's lock), with progress per schema, and resumable: a rerun does only the schemas left."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from schemas.models import MigrationRecord, Rollout

from .conftest import MIGRATIONS

FILL = """
    from django.db import migrations


    def forwards(apps, schema_editor):
        with schema_editor.connection.cursor() as cursor:
            # A schema change's lock still held here means this runs inside the schema change's transaction.
            cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' "
                           "AND mode = 'AccessExclusiveLock'")
            if cursor.fetchone()[0]:
                raise RuntimeError("data migration inside a schema change's lock")
            cursor.execute("SELECT count(*) FROM courtside_probe_gadget WHERE name = 'bad'")
            if cursor.fetchone()[0]:
                raise RuntimeError("a gadget named bad")
            cursor.execute("UPDATE courtside_probe_gadget SET size = length(name)")


    class Migration(migrations.Migration):
        dependencies = [("courtside_probe", "0002_gadget_size")]
        operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
"""


def rollout(*args, **options):
    out = StringIO()
    call_command("rollout", *args, stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def sizes(probe, schema):
    with probe_cursor(schema) as cursor:
        cursor.execute("SELECT name, size FROM courtside_probe_gadget ORDER BY name")
        return cursor.fetchall()


def probe_cursor(schema):
    from django.db import connection

    connection.set_schema(schema)
    return connection.cursor()


@pytest.fixture
def filled(probe):
    rollout()
    for schema in ("lakers", "warriors"):
        probe.execute(schema, "INSERT INTO courtside_probe_gadget (name) VALUES ('ball'), ('hoop')")
    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    probe.write("0003_fill", FILL)
    return probe


def test_a_data_migration_runs_after_the_schema_migrations_outside_their_lock_with_progress(filled):
    output = rollout()

    for schema in ("lakers", "warriors"):
        assert filled.applied(schema) == {"0001_initial", "0002_gadget_size", "0003_fill"}
        assert sizes(filled, schema) == [("ball", 4), ("hoop", 4)]
    assert "schema phase: 2 schema(s) migrated" in output
    assert "data phase courtside_probe.0003_fill (data): 2/2 schema(s) done" in output
    data_rollout = Rollout.objects.filter(targets=[["courtside_probe", "0003_fill"]]).get()
    assert {s: r["status"] for s, r in data_rollout.results.items()} == {"lakers": "ok", "warriors": "ok"}


def test_a_failed_data_migration_leaves_the_schema_part_and_the_other_tenant_done_and_a_rerun_resumes(filled):
    filled.execute("lakers", "INSERT INTO courtside_probe_gadget (name) VALUES ('bad')")

    with pytest.raises(CommandError, match="lakers"):
        rollout()

    assert filled.applied("lakers") == {"0001_initial", "0002_gadget_size"}  # the schema part stands
    assert filled.applied("warriors") == {"0001_initial", "0002_gadget_size", "0003_fill"}  # B is not held up
    data_rollout = Rollout.objects.filter(targets=[["courtside_probe", "0003_fill"]]).get()
    assert data_rollout.results["lakers"]["status"] == "failed"
    assert data_rollout.results["warriors"]["status"] == "ok"
    assert MigrationRecord.objects.filter(name="0003_fill", outcome="applied").count() == 1

    filled.execute("lakers", "DELETE FROM courtside_probe_gadget WHERE name = 'bad'")
    output = rollout()

    assert "data phase courtside_probe.0003_fill (data): 1/1 schema(s) done" in output  # only the schema left
    assert filled.applied("lakers") == {"0001_initial", "0002_gadget_size", "0003_fill"}
    assert sizes(filled, "lakers") == [("ball", 4), ("hoop", 4)]


def test_a_schema_already_ahead_is_never_rolled_back_by_a_phase(filled):
    rollout(schema=["warriors"])
    filled.write("0004_gadget_colour", """
        from django.db import migrations, models


        class Migration(migrations.Migration):
            dependencies = [("courtside_probe", "0003_fill")]
            operations = [migrations.AddField("gadget", "colour", models.CharField(max_length=9, default=""))]
    """)
    rollout(schema=["warriors"])
    assert "0004_gadget_colour" in filled.applied("warriors")

    rollout()

    for schema in ("lakers", "warriors"):
        assert filled.applied(schema) == {"0001_initial", "0002_gadget_size", "0003_fill", "0004_gadget_colour"}
    assert not MigrationRecord.objects.filter(schema_name="warriors", outcome="undone").exists()


def test_the_type_shows_in_the_summary_the_ledger_list_and_migration_status(filled, operator_client):
    import re

    summary = operator_client.get("/admin/schemas/migrationrecord/summary/").content.decode()
    assert re.search(r"<td>0003_fill</td><td>data</td>", summary)
    assert re.search(r"<td>0002_gadget_size</td><td>schema</td>", summary)
    status = StringIO()
    call_command("migration_status", schema=["lakers"], stdout=status)
    assert "pending   courtside_probe.0003_fill  (data)" in status.getvalue()

    rollout()

    listing = operator_client.get("/admin/schemas/migrationrecord/", {"app_label__exact": "courtside_probe",
                                                                       "schema_name": "lakers"}).content.decode()
    assert re.search(r'0003_fill</td><td class="field-migration_type">data</td>', listing)
    assert re.search(r'0002_gadget_size</td><td class="field-migration_type">schema</td>', listing)
