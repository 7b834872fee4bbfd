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


HYBRID = """
    from django.db import migrations, models


    def forwards(apps, schema_editor):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' "
                           "AND mode = 'AccessExclusiveLock'")
            if cursor.fetchone()[0]:
                raise RuntimeError("data part inside the schema part's lock")
        Gadget = apps.get_model("courtside_probe", "Gadget")
        for gadget in Gadget.objects.all():
            gadget.size = len(gadget.name)
            gadget.save(update_fields=["size"])


    class Migration(migrations.Migration):
        migration_type = "hybrid"  # declared: split into its schema part and its data part
        dependencies = [("courtside_probe", "0001_initial")]
        operations = [
            migrations.AddField("gadget", "size", models.IntegerField(default=0)),
            migrations.RunPython(forwards, migrations.RunPython.noop),
        ]
"""


def test_a_hybrid_migration_runs_its_schema_part_in_the_schema_phase_and_its_data_part_after_it(probe):
    rollout()
    for schema in ("lakers", "warriors"):
        probe.execute(schema, "INSERT INTO courtside_probe_gadget (name) VALUES ('ball'), ('hoop')")
    probe.write("0002_size_hybrid", HYBRID)
    status = StringIO()
    call_command("migration_status", schema=["lakers"], stdout=status)
    assert "pending   courtside_probe.0002_size_hybrid__schema  (schema)" in status.getvalue()
    assert "pending   courtside_probe.0002_size_hybrid  (hybrid)" in status.getvalue()

    output = rollout()

    assert "schema phase: 2 schema(s) migrated" in output
    assert "data phase courtside_probe.0002_size_hybrid (hybrid): 2/2 schema(s) done" in output
    for schema in ("lakers", "warriors"):
        assert probe.applied(schema) == {"0001_initial", "0002_size_hybrid__schema", "0002_size_hybrid"}
        assert sizes(probe, schema) == [("ball", 4), ("hoop", 4)]
        recorded = set(MigrationRecord.objects.filter(schema_name=schema, app_label="courtside_probe",
                                                      outcome="applied").values_list("name", flat=True))
        assert recorded == {"0001_initial", "0002_size_hybrid__schema", "0002_size_hybrid"}
    schema_row = Rollout.objects.get(phase__kind="schema", phase__goal=[],
                                     results__lakers__applied=["courtside_probe.0002_size_hybrid__schema"])
    assert schema_row.status == "succeeded"
    data_row = Rollout.objects.get(phase__kind="data", phase__migration="courtside_probe.0002_size_hybrid")
    assert data_row.phase["type"] == "hybrid"
    assert data_row.results["warriors"]["applied"] == ["courtside_probe.0002_size_hybrid"]

    rollout("courtside_probe.0001_initial")  # a rollback undoes both parts

    for schema in ("lakers", "warriors"):
        assert probe.applied(schema) == {"0001_initial"}
        assert "size" not in probe.columns(schema)


def test_a_data_phase_runs_in_batches_and_after_an_abort_resumes_without_redoing_a_done_schema(filled):
    from schemas.data_migrations import rollout_phased

    filled.write("0003_fill", FILL.replace(
        'cursor.execute("UPDATE courtside_probe_gadget SET size = length(name)")',
        'cursor.execute("UPDATE courtside_probe_gadget SET size = size + length(name)")'))  # twice shows
    seen = []

    class Killed(BaseException):
        pass

    def progress(result):
        if "courtside_probe.0003_fill" in result["applied"]:
            seen.append(result["schema"])
            raise Killed  # as a kill right after the first schema of the data phase committed

    with pytest.raises(Killed):
        rollout_phased(batch_size=1, workers=1, progress=progress)

    assert seen == ["lakers"]
    assert "0003_fill" in filled.applied("lakers") and "0003_fill" not in filled.applied("warriors")
    killed = Rollout.objects.get(phase__kind="data", phase__batch=1)
    assert killed.status == "running" and killed.phase["batches"] == 2

    output = rollout(resume=True, batch_size=1)

    assert "data phase courtside_probe.0003_fill (data): 1/1 schema(s) done, 0 failed" in output  # warriors only
    assert sizes(filled, "lakers") == [("ball", 4), ("hoop", 4)]  # not run twice
    assert sizes(filled, "warriors") == [("ball", 4), ("hoop", 4)]
    killed.refresh_from_db()
    assert killed.status == "succeeded"
    rest = Rollout.objects.filter(phase__kind="data").latest("id")
    assert set(rest.results) == {"warriors"} and rest.status == "succeeded"
    assert MigrationRecord.objects.filter(name="0003_fill", outcome="applied").count() == 2


def test_explicit_targets_with_a_canary_then_resume_go_through_the_phases_up_to_the_targets(filled):
    filled.write("0004_gadget_colour", """
        from django.db import migrations, models


        class Migration(migrations.Migration):
            dependencies = [("courtside_probe", "0003_fill")]
            operations = [migrations.AddField("gadget", "colour", models.CharField(max_length=9, default=""))]
    """)

    output = rollout("courtside_probe.0003_fill", canary=1)

    assert "data phase courtside_probe.0003_fill (data): 1/1 schema(s) done" in output
    assert "1 schema(s) left: run `rollout --resume`" in output
    assert filled.applied("lakers") == {"0001_initial", "0002_gadget_size", "0003_fill"}
    assert filled.applied("warriors") == {"0001_initial"}
    assert sizes(filled, "lakers") == [("ball", 4), ("hoop", 4)]  # the data ran outside the AddField's lock

    output = rollout(resume=True)

    assert "data phase courtside_probe.0003_fill (data): 1/1 schema(s) done" in output
    for schema in ("lakers", "warriors"):  # up to the target: 0004 stays pending
        assert filled.applied(schema) == {"0001_initial", "0002_gadget_size", "0003_fill"}
        assert sizes(filled, schema) == [("ball", 4), ("hoop", 4)]
    with pytest.raises(CommandError, match="Nothing to resume"):
        rollout(resume=True)


def test_a_bad_batch_size_is_a_command_error(filled):
    with pytest.raises(CommandError, match="batch of 1 to 10,000"):
        rollout(batch_size=0)


def test_the_rollouts_list_in_the_admin_names_each_rows_phase_and_batch(filled, operator_client):
    rollout(batch_size=1)

    listing = operator_client.get("/admin/schemas/rollout/").content.decode()
    assert "data courtside_probe.0003_fill (data), batch 1/2" in listing
    assert "data courtside_probe.0003_fill (data), batch 2/2" in listing
    row = Rollout.objects.get(phase__kind="data", phase__batch=2)
    page = operator_client.get(f"/admin/schemas/rollout/{row.pk}/change/").content.decode()
    assert "batch 2/2" in page
    api = operator_client.get(f"/api/v1/schemas/rollouts/{row.pk}/")
    assert api.status_code == 200, api.content[:200]
    assert api.json()["phase"] == {**row.phase, "batch": 2, "batches": 2, "kind": "data",
                                   "migration": "courtside_probe.0003_fill", "type": "data"}


# The admin's "Start a rollout" and the API's POST /api/v1/tasks/runs/ {"name": "schemas.rollout"} queue the
# `schemas.rollout` task: it goes through the same phases as `manage.py rollout` (one service, rollout_phased).


def _execute_rollout_run():
    from tasks.engine.execution import run_execute
    from tasks.models import TaskRun

    run = TaskRun.objects.filter(name="schemas.rollout").order_by("created_at").last()
    state = run_execute(run_id=run.pk)  # the queue is not under test: the task's own code runs here
    run.refresh_from_db()
    return state, run


def test_a_rollout_started_from_the_admin_runs_the_data_migration_in_its_own_phase_after_the_schema_phase(
        filled, operator_client):
    before = Rollout.objects.latest("id").pk  # the fixture's own rollout of 0001
    page = operator_client.post("/admin/schemas/rollout/start/", {"action": "Start rollout"})
    assert page.status_code == 302

    state, run = _execute_rollout_run()

    assert state == "succeeded", run.error  # one pass would run 0003_fill inside 0002's AddField lock and fail
    for schema in ("lakers", "warriors"):
        assert filled.applied(schema) == {"0001_initial", "0002_gadget_size", "0003_fill"}
        assert sizes(filled, schema) == [("ball", 4), ("hoop", 4)]
    rows = Rollout.objects.filter(pk__gt=before).order_by("id")
    assert [(r.phase.get("kind"), r.phase.get("migration")) for r in rows] == [
        ("schema", ""), ("data", "courtside_probe.0003_fill")]
    assert all(r.started_by == "operator" and r.status == "succeeded" for r in rows)
    assert run.result["phases"] == ["schema phase: 2 schema(s) migrated, 0 failed",
                                    "data phase courtside_probe.0003_fill (data): 2/2 schema(s) done, 0 failed"]
    assert run.result["migrated"] == 2 and run.result["failed"] == []
    assert run.progress == 1.0 and run.progress_message.startswith("data phase courtside_probe.0003_fill (data)")
    listing = operator_client.get("/admin/schemas/rollout/").content.decode()
    assert "data courtside_probe.0003_fill (data), batch 1/1" in listing


def test_an_api_rollout_with_a_canary_runs_the_phases_on_the_canary_first_and_halts_there_on_failure(
        filled, operator_client):
    filled.execute("lakers", "INSERT INTO courtside_probe_gadget (name) VALUES ('bad')")  # the canary fails

    submitted = operator_client.post("/api/v1/tasks/runs/", {"name": "schemas.rollout", "args": {"canary": 1}},
                                     content_type="application/json")
    assert submitted.status_code == 201, submitted.content[:300]
    state, run = _execute_rollout_run()

    assert state == "failed" and "lakers" in run.error and "the rest was not started" in run.error
    assert filled.applied("lakers") == {"0001_initial", "0002_gadget_size"}  # its schema phase stands
    assert filled.applied("warriors") == {"0001_initial"}  # the other tenant is untouched
    data_row = Rollout.objects.get(phase__kind="data")
    assert data_row.phase["stage"] == "canary" and data_row.results["lakers"]["status"] == "failed"

    filled.execute("lakers", "DELETE FROM courtside_probe_gadget WHERE name = 'bad'")
    operator_client.post("/api/v1/tasks/runs/", {"name": "schemas.rollout", "args": {"resume": True}},
                         content_type="application/json")
    state, run = _execute_rollout_run()

    assert state == "succeeded", run.error
    for schema in ("lakers", "warriors"):
        assert filled.applied(schema) == {"0001_initial", "0002_gadget_size", "0003_fill"}
        assert sizes(filled, schema) == [("ball", 4), ("hoop", 4)]
    assert MigrationRecord.objects.filter(name="0003_fill", outcome="applied").count() == 2


def test_an_admin_rollout_with_a_canary_then_the_rest_goes_through_the_phases_in_each_stage(filled, operator_client):
    before = Rollout.objects.latest("id").pk
    operator_client.post("/admin/schemas/rollout/start/", {"action": "Start rollout", "canary": "1"})

    state, run = _execute_rollout_run()

    assert state == "succeeded", run.error
    for schema in ("lakers", "warriors"):
        assert sizes(filled, schema) == [("ball", 4), ("hoop", 4)]
    rows = Rollout.objects.filter(pk__gt=before).order_by("id")
    stages = [(r.phase["stage"], r.phase["kind"], sorted(r.results)) for r in rows]
    assert stages == [("canary", "schema", ["lakers"]), ("canary", "data", ["lakers"]),
                      ("rest", "schema", ["warriors"]), ("rest", "data", ["warriors"])]
    assert [s["stage"] for s in run.result["stages"]] == ["canary", "rest"]


def test_the_admins_dry_run_names_the_phases_the_rollout_will_go_through(filled, operator_client):
    page = operator_client.post("/admin/schemas/rollout/start/", {"action": "plan"}).content.decode()

    assert ('<p id="plan-phases">Phases: schema phase, then data phase courtside_probe.0003_fill (data)</p>'
            in page)
    assert "Apply courtside_probe.0003_fill <small>(data)</small>" in page
    assert filled.applied("lakers") == {"0001_initial"}  # a dry run


def test_the_matrix_shows_each_migrations_type_in_its_cells_its_header_and_the_pending_list(filled, operator_client):
    import re

    rollout(schema=["warriors"])

    page = operator_client.get("/admin/schemas/migrationrecord/matrix/").content.decode()

    header = page.split("latest on disk")[1].split("</tr>")[0]
    assert "0003_fill (data)" in header  # the app's latest migration on disk, and its type
    warriors = page.split('data-schema="warriors"')[1].split("</tr>")[0]
    assert re.search(r'0003_fill <small class="migration-type">\(data\)</small>', warriors)
    lakers = page.split('data-schema="lakers"')[1].split("</tr>")[0]
    assert re.search(r'0001_initial <small class="migration-type">\(schema\)</small>', lakers)
    assert "pending courtside_probe.0002_gadget_size (schema); pending courtside_probe.0003_fill (data)" in lakers


def test_bad_api_rollout_arguments_are_a_400_or_fail_the_run_before_anything_changes(filled, operator_client):
    from tasks.models import TaskRun

    before = Rollout.objects.count()
    refused = operator_client.post("/api/v1/tasks/runs/", {"name": "schemas.rollout", "args": {"canary": 0}},
                                   content_type="application/json")
    assert refused.status_code == 400 and "error" in refused.json()
    assert not TaskRun.objects.filter(name="schemas.rollout").exists()

    operator_client.post("/api/v1/tasks/runs/", {"name": "schemas.rollout",
                                                 "args": {"targets": ["courtside_probe.9999"]}},
                         content_type="application/json")
    state, run = _execute_rollout_run()

    assert state == "failed" and "courtside_probe.9999" in run.error
    assert Rollout.objects.count() == before and filled.applied("lakers") == {"0001_initial"}


def test_an_api_rollout_splits_a_hybrid_into_its_schema_part_then_its_data_part(probe, operator_client):
    rollout()
    for schema in ("lakers", "warriors"):
        probe.execute(schema, "INSERT INTO courtside_probe_gadget (name) VALUES ('ball'), ('hoop')")
    probe.write("0002_size_hybrid", HYBRID)

    operator_client.post("/api/v1/tasks/runs/", {"name": "schemas.rollout", "args": {}},
                         content_type="application/json")
    state, run = _execute_rollout_run()

    assert state == "succeeded", run.error  # the data part checks it holds no AddField lock
    assert run.result["phases"] == ["schema phase: 2 schema(s) migrated, 0 failed",
                                    "data phase courtside_probe.0002_size_hybrid (hybrid): 2/2 schema(s) done, "
                                    "0 failed"]
    for schema in ("lakers", "warriors"):
        assert probe.applied(schema) == {"0001_initial", "0002_size_hybrid__schema", "0002_size_hybrid"}
        assert sizes(probe, schema) == [("ball", 4), ("hoop", 4)]
