"""The ledger also records stock `migrate_schemas` runs, and keeps a reversed migration as undone history."""

import textwrap

import pytest
from django.core.management import call_command

from schemas.graph import file_checksum
from schemas.models import MigrationRecord


def test_stock_migrate_schemas_is_recorded_with_checksum_and_its_reversal_marked_undone(probe):
    call_command("migrate_schemas", schema_name="lakers", interactive=False, verbosity=0)

    record = MigrationRecord.objects.get(schema_name="lakers", app_label="courtside_probe")
    assert record.name == "0001_initial" and record.outcome == "applied"
    assert record.checksum == file_checksum(str(probe.path("0001_initial")))
    assert record.applied_by and record.applied_at
    assert not MigrationRecord.objects.filter(schema_name="warriors", app_label="courtside_probe").exists()

    call_command("migrate_schemas", "courtside_probe", "zero", schema_name="lakers", interactive=False,
                 verbosity=0)

    record.refresh_from_db()
    assert record.outcome == "undone" and record.undone_at is not None
    assert probe.applied("lakers") == set()


def test_baseline_adopts_migrations_applied_before_the_ledger_so_later_edits_show_as_drift(probe):
    from io import StringIO

    from django.core.management import CommandError, call_command

    from schemas.services import drift_report

    from .conftest import MIGRATIONS

    call_command("rollout", stdout=StringIO(), stderr=StringIO())
    # As if lakers had been migrated before the ledger existed: its rows are not there.
    MigrationRecord.objects.filter(schema_name="lakers").delete()

    def baseline(*args, **options):
        out = StringIO()
        call_command("migration_baseline", *args, stdout=out, stderr=StringIO(), **options)
        return out.getvalue()

    assert "would record" in baseline(dry_run=True, schemas=["lakers"])
    assert not MigrationRecord.objects.filter(schema_name="lakers").exists()
    assert "recorded" in baseline(schemas=["lakers"])
    record = MigrationRecord.objects.get(schema_name="lakers", app_label="courtside_probe")
    assert record.outcome == "applied" and len(record.checksum) == 64 and record.applied_by.startswith("baseline")
    baseline()  # every schema
    assert "recorded 0 migration(s)" in baseline()  # nothing twice

    probe.write("0001_initial", textwrap.dedent(MIGRATIONS["0001_initial"]) + "# edited after it was applied\n")
    changed = {(e["app"], e["name"]): e["schemas"] for e in drift_report().changed_files}
    assert changed[("courtside_probe", "0001_initial")] == ["lakers", "warriors"]

    with pytest.raises(CommandError, match="No such schema: nowhere"):
        baseline(schemas=["nowhere"])
