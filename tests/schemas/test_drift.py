"""Drift: `migration_status` and the schemas.W00x checks name changed and deleted files, missing tables."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command

from schemas.checks import migration_drift_check
from schemas.services import drift_report

from .conftest import MIGRATIONS


def status(*args, **options):
    out = StringIO()
    call_command("migration_status", *args, stdout=out, **options)
    return out.getvalue()


def rollout(**options):
    call_command("rollout", stdout=StringIO(), stderr=StringIO(), **options)


def test_pending_migrations_are_listed_per_schema(probe):
    output = status(schema=["lakers", "warriors"])

    assert "lakers:\n  pending   courtside_probe.0001_initial" in output
    assert "warriors:\n  pending   courtside_probe.0001_initial" in output
    pending = [m for m in migration_drift_check(databases=["default"]) if m.id == "schemas.W001"]
    assert len(pending) == 1 and "lakers" in pending[0].msg and "warriors" in pending[0].msg


def test_an_edited_applied_migration_is_reported_naming_the_file_and_every_schema(probe):
    rollout()
    assert status(schema=["lakers", "warriors"], check=True)  # clean: --check does not raise

    path = probe.path("0001_initial")
    path.write_text(path.read_text() + "\n# edited after it ran\n")

    output = status(schema=["lakers", "warriors"])
    assert f"CHANGED  courtside_probe.0001_initial  file {path}" in output
    assert "in 2 schema(s): lakers, warriors" in output
    # Registered as a database check: it runs when databases are checked (migrate, check --database).
    assert run_checks(tags=["schemas"]) == []
    warnings = [m for m in run_checks(tags=["schemas"], databases=["default"]) if m.id == "schemas.W002"]
    assert len(warnings) == 1
    assert str(path) in warnings[0].msg and "lakers, warriors" in warnings[0].msg
    with pytest.raises(CommandError, match="migration problems"):
        status(schema=["lakers", "warriors"], check=True)


def test_a_deleted_applied_migration_is_reported_with_its_schemas(probe):
    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    rollout(schemas=["lakers"])
    probe.delete("0002_gadget_size")

    output = status(schema=["lakers", "warriors"])

    assert "GONE     courtside_probe.0002_gadget_size  applied but the file is gone, in 1 schema(s): lakers" in output
    assert "lakers:\n  file gone courtside_probe.0002_gadget_size" in output
    gone = [m for m in migration_drift_check(databases=["default"]) if m.id == "schemas.W003"]
    assert len(gone) == 1 and "courtside_probe.0002_gadget_size" in gone[0].msg and "lakers" in gone[0].msg


def test_a_schema_whose_table_is_missing_is_reported_and_no_other(probe):
    rollout()
    probe.execute("warriors", "DROP TABLE courtside_probe_gadget")

    report = {s.schema: s for s in drift_report(schemas=["lakers", "warriors"], include_public=False).schemas}

    assert report["warriors"].missing_tables == ["courtside_probe.courtside_probe_gadget"]
    assert report["lakers"].missing_tables == [] and not report["lakers"].problems
    assert "warriors:\n  missing table  courtside_probe.courtside_probe_gadget" in status(schema=["warriors"])
    assert any(m.id == "schemas.W004" and "warriors" in m.msg for m in migration_drift_check(databases=["default"]))


def test_a_schema_missing_a_column_is_reported(probe):
    rollout()
    probe.execute("lakers", "ALTER TABLE courtside_probe_gadget DROP COLUMN name")

    report = {s.schema: s for s in drift_report(schemas=["lakers", "warriors"], include_public=False).schemas}

    assert report["lakers"].missing_columns == ["courtside_probe.courtside_probe_gadget.name"]
    assert not report["warriors"].problems


def test_status_as_json_lists_each_schema(probe):
    import json

    rollout()
    data = json.loads(status(schema=["lakers", "warriors"], json=True))

    assert {s["schema"] for s in data["schemas"]} == {"lakers", "warriors"}
    assert all(s["latest"]["courtside_probe"] == "0001_initial" for s in data["schemas"])


def test_the_check_is_silent_when_the_database_is_unreachable():
    """A real manage.py process pointed at a port where nothing listens."""
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:9/nowhere",
           "DJANGO_SETTINGS_MODULE": "backoffice.settings.test"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from schemas.checks import migration_drift_check; "
                               "print('messages:', migration_drift_check(databases=['default']))"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "messages: []" in result.stdout


def test_a_tenant_apps_migration_is_never_pending_in_public_so_a_rollout_leaves_every_schema_clean(probe):
    """Found by the operator's-day test: a rollout migrates every tenant schema, and the status still named
    public as pending, because django_migrations there lacks the tenant app's row. A tenant app's migrations
    never run in public (its tables live in tenant schemas only): there is nothing to apply there."""
    before = {s.schema: s.pending for s in drift_report().schemas}
    assert before["public"] == []
    assert before["lakers"] == before["warriors"] == [("courtside_probe", "0001_initial")]

    rollout()

    assert [s.schema for s in drift_report().schemas if s.pending] == []
    assert not [m for m in migration_drift_check(databases=["default"]) if m.id == "schemas.W001"]
    status(check=True)  # clean: --check does not raise
