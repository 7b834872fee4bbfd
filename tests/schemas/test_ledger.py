"""The ledger also records stock `migrate_schemas` runs, and keeps a reversed migration as undone history."""

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
