"""`rollout`: parallel, one transaction per schema, failures isolated, resumable, canary, rollback, lock."""

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from schemas.models import MigrationRecord, Rollout
from schemas.services import ROLLOUT_LOCK_KEY

from .conftest import MIGRATIONS


def run(*args, **options):
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("rollout", *args, stdout=out, stderr=err, **options)
    return out.getvalue()


def test_rollout_applies_pending_migrations_to_every_tenant_schema_in_parallel(probe):
    output = run(workers=2)

    assert "2 schema(s) migrated, 0 failed" in output
    for schema in ("lakers", "warriors"):
        assert probe.columns(schema) == {"id", "name"}
        assert probe.applied(schema) == {"0001_initial"}
    records = MigrationRecord.objects.filter(app_label="courtside_probe")
    assert sorted(records.values_list("schema_name", "name", "outcome")) == [
        ("lakers", "0001_initial", "applied"), ("warriors", "0001_initial", "applied")]
    assert all(len(r.checksum) == 64 and r.applied_by for r in records)
    assert Rollout.objects.get().status == Rollout.Status.SUCCEEDED


def test_a_failure_in_one_tenant_leaves_it_on_its_old_state_and_resume_completes_after_the_fix(probe):
    run(workers=2)
    probe.execute("warriors", "INSERT INTO courtside_probe_gadget (name) VALUES ('ball'), ('ball')")
    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    probe.write("0003_unique_name", MIGRATIONS["0003_unique_name"])

    with pytest.raises(CommandError) as failure:
        run(workers=2)

    assert "1 schema(s) migrated, 1 failed" in str(failure.value)
    # Lakers moved on; the Warriors kept their old state wholly, 0002 included.
    assert probe.columns("lakers") == {"id", "name", "size"}
    assert probe.applied("lakers") == {"0001_initial", "0002_gadget_size", "0003_unique_name"}
    assert probe.columns("warriors") == {"id", "name"}
    assert probe.applied("warriors") == {"0001_initial"}
    failed = MigrationRecord.objects.get(schema_name="warriors", outcome="failed")
    assert failed.name == "0003_unique_name" and "probe_gadget_name_unique" in failed.error
    assert not MigrationRecord.objects.filter(schema_name="warriors", name="0002_gadget_size").exists()
    rollout = Rollout.objects.first()
    assert rollout.status == Rollout.Status.FAILED and rollout.failed_schemas == ["warriors"]

    probe.execute("warriors", "DELETE FROM courtside_probe_gadget WHERE id = "
                              "(SELECT max(id) FROM courtside_probe_gadget)")
    output = run(resume=True)

    assert "1 schema(s) migrated, 0 failed" in output
    assert probe.applied("warriors") == {"0001_initial", "0002_gadget_size", "0003_unique_name"}
    assert probe.columns("warriors") == {"id", "name", "size"}
    resumed = Rollout.objects.first()
    assert resumed.pk == rollout.pk and resumed.status == Rollout.Status.SUCCEEDED  # the same rollout, resumed


def test_a_second_concurrent_rollout_is_refused_with_a_clear_message(probe):
    params = connection.get_connection_params()
    # A real second session holding the rollout's advisory lock, as a running rollout does.
    with psycopg.connect(dbname=params["dbname"], user=params.get("user"), host=params.get("host"),
                         port=params.get("port"), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [ROLLOUT_LOCK_KEY])
        with pytest.raises(CommandError, match="Another rollout is already running"):
            run()

    assert probe.applied("lakers") == set()
    assert not Rollout.objects.exists()
    run()  # the lock went with the other session
    assert probe.applied("lakers") == {"0001_initial"}


def test_canary_migrates_the_first_schemas_only_and_resume_does_the_rest(probe):
    output = run(canary=1)

    assert "Canary done" in output
    assert probe.applied("lakers") == {"0001_initial"}
    assert probe.applied("warriors") == set()
    assert Rollout.objects.first().status == Rollout.Status.PARTIAL

    run(resume=True)
    assert probe.applied("warriors") == {"0001_initial"}


def test_canary_stops_at_the_first_failure(probe):
    run()
    probe.execute("lakers", "INSERT INTO courtside_probe_gadget (name) VALUES ('ball'), ('ball')")
    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    probe.write("0003_unique_name", MIGRATIONS["0003_unique_name"])

    with pytest.raises(CommandError, match="1 failed"):
        run(canary=2)

    assert probe.applied("lakers") == {"0001_initial"}
    assert probe.applied("warriors") == {"0001_initial"}  # never attempted


def test_rollback_dry_run_prints_the_plan_and_changes_nothing_then_history_shows_undone(probe):
    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    run(workers=2)

    plan = run("courtside_probe.0001", dry_run=True)

    assert "lakers:\n  Unapply courtside_probe.0002_gadget_size" in plan
    assert "warriors:\n  Unapply courtside_probe.0002_gadget_size" in plan
    assert "Nothing was changed" in plan
    assert probe.columns("lakers") == {"id", "name", "size"}

    run("courtside_probe.0001", workers=2)

    for schema in ("lakers", "warriors"):
        assert probe.columns(schema) == {"id", "name"}
        assert probe.applied(schema) == {"0001_initial"}
        undone = MigrationRecord.objects.get(schema_name=schema, name="0002_gadget_size")
        assert undone.outcome == "undone" and undone.undone_at and undone.undone_by
    assert MigrationRecord.objects.filter(name="0001_initial", outcome="applied").count() == 2


def test_rollout_of_one_tenant_does_not_touch_another(probe):
    run(schemas=["lakers"])

    assert probe.applied("lakers") == {"0001_initial"}
    assert probe.applied("warriors") == set()
    assert probe.columns("warriors") == set()
    assert not MigrationRecord.objects.filter(schema_name="warriors", app_label="courtside_probe").exists()


def test_unknown_schema_or_target_is_refused(probe):
    with pytest.raises(CommandError, match="Not a tenant schema: nope"):
        run(schemas=["nope"])
    with pytest.raises(CommandError, match="courtside_probe.9999"):
        run("courtside_probe.9999")


CONCURRENT_INDEX = """
    from django.contrib.postgres.operations import AddIndexConcurrently
    from django.db import migrations, models


    class Migration(migrations.Migration):
        atomic = False  # CREATE INDEX CONCURRENTLY cannot run inside a transaction
        dependencies = [("courtside_probe", "0001_initial")]
        operations = [
            AddIndexConcurrently("gadget", models.Index(fields=["name"], name="probe_gadget_name_idx")),
        ]
"""


def index_exists(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = 'probe_gadget_name_idx'",
                       [schema])
        return cursor.fetchone() is not None


def test_a_non_atomic_migration_rolls_out_and_back_migration_by_migration(probe):
    run(workers=2)
    probe.write("0002_concurrent_index", CONCURRENT_INDEX)

    assert "2 schema(s) migrated, 0 failed" in run(workers=2)
    assert index_exists("lakers") and index_exists("warriors")
    assert probe.applied("warriors") == {"0001_initial", "0002_concurrent_index"}
    assert MigrationRecord.objects.filter(app_label="courtside_probe", name="0002_concurrent_index",
                                          outcome="applied").count() == 2

    run("courtside_probe.0001", workers=1, schemas=["lakers"])
    assert not index_exists("lakers") and index_exists("warriors")
    assert MigrationRecord.objects.get(schema_name="lakers", name="0002_concurrent_index").outcome == "undone"


def _rollout_in_a_daemonic_process(report):
    """What a django-q2 worker is: a daemonic process, which may not start child processes."""
    import threading

    from schemas.executor import SchemaMigrator
    from schemas.services import rollout_run

    threads = set()
    run_one = SchemaMigrator.run

    def run_and_note(self, schema_name):
        threads.add(threading.current_thread().name)
        return run_one(self, schema_name)

    SchemaMigrator.run = run_and_note
    try:
        result = rollout_run(workers=2)
        report.put({"failed": sorted(result.failed), "migrated": len(result.results), "threads": sorted(threads)})
    except Exception as error:  # noqa: BLE001
        report.put({"error": repr(error)})


def test_a_rollout_in_a_daemonic_worker_runs_schemas_in_parallel_threads(probe):
    import multiprocessing

    from django.db import connections

    connections.close_all()  # the child must not share this process's socket
    context = multiprocessing.get_context("fork")
    report = context.Queue()
    child = context.Process(target=_rollout_in_a_daemonic_process, args=(report,), daemon=True)
    child.start()
    outcome = report.get(timeout=120)
    child.join(timeout=30)
    assert outcome == {"failed": [], "migrated": 2, "threads": ["rollout-0", "rollout-1"]}, outcome
    for schema in ("lakers", "warriors"):
        assert probe.applied(schema) == {"0001_initial"}


def test_steps_back_unapplies_each_schemas_last_migrations_and_refuses_bad_input(probe):
    """`rollout --steps N` as the seed's migrate_down(steps=N); bad input changes nothing."""
    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    run()
    assert probe.applied("lakers") == probe.applied("warriors") == {"0001_initial", "0002_gadget_size"}

    for bad, message in ((["--steps", "0"], "from 1 to"), (["--steps", "3", "courtside_probe"], "more than is applied"),
                         (["--steps", "1", "nosuchapp"], "Not a tenant app"),
                         (["--steps", "1", "courtside_probe.0001"], "app labels"),
                         (["--steps", "1", "--resume"], "neither")):
        with pytest.raises(CommandError, match=message):
            run(*bad)
    assert probe.applied("lakers") == probe.applied("warriors") == {"0001_initial", "0002_gadget_size"}

    run("courtside_probe", steps=1)
    for schema in ("lakers", "warriors"):
        assert probe.applied(schema) == {"0001_initial"}
        assert probe.columns(schema) == {"id", "name"}
    assert MigrationRecord.objects.filter(name="0002_gadget_size", outcome="undone").count() == 2

    run("courtside_probe", steps=1, schema=["warriors"])  # one schema only: the other is untouched
    assert probe.applied("warriors") == set() and probe.applied("lakers") == {"0001_initial"}
