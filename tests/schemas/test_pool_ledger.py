"""A tenant signed up from the schema pool keeps its migration ledger: the rows follow the schema on every rename.

`ALTER SCHEMA ... RENAME` moves the tables, not the ledger rows that name the
schema; these tests pin that a pool tenant's history, drift check, matrix row
and rollout targeting are those of a tenant migrated in place, and that spare
`_pool_...` schemas stay out of the ledger lists, counted on one line.
"""

import json
import textwrap
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection

from schemas import selectors
from schemas.models import MigrationRecord, Rollout
from schemas.services import drift_report, rollout_run
from tenants import provisioning, services
from tenants.models import PooledSchema, Tenant

from .conftest import MIGRATIONS

MATRIX = "/admin/schemas/migrationrecord/matrix/"
LEDGER = "/admin/schemas/migrationrecord/"


def _history(schema_name):
    return {(r.app_label, r.name, r.checksum, r.outcome) for r in selectors.schema_history(schema_name=schema_name)}


def _pool_in_place_pair():
    """One tenant from the pool (heat), one migrated in place because the pool was empty (bulls)."""
    pooled = provisioning.pool_add()
    services.tenant_create(name="Miami Heat", schema_name="heat")
    assert not PooledSchema.objects.filter(pk=pooled.pk).exists()  # heat really came from the pool
    services.tenant_create(name="Chicago Bulls", schema_name="bulls")
    return pooled.schema_name


def test_a_pool_tenant_has_the_history_of_a_tenant_migrated_in_place(public_tenant, operator_client):
    pool_name = _pool_in_place_pair()

    heat = operator_client.get("/api/v1/schemas/heat/history/").json()
    bulls = operator_client.get("/api/v1/schemas/bulls/history/").json()

    assert bulls["count"] > 0
    assert heat["count"] == bulls["count"]
    assert _history("heat") == _history("bulls")
    assert not MigrationRecord.objects.filter(schema_name=pool_name).exists()  # moved, not copied


def test_an_edited_migration_file_is_drift_in_a_pool_tenant_and_rollouts_target_it_alike(probe_db, public_tenant):
    _pool_in_place_pair()

    probe_db.write("0001_initial", textwrap.dedent(MIGRATIONS["0001_initial"]) + "\n# edited after it was applied\n")
    report = drift_report()

    changed = {e["name"]: e["schemas"] for e in report.changed_files if e["app"] == "courtside_probe"}
    assert changed == {"0001_initial": ["bulls", "heat"]}
    by_schema = {s.schema: s for s in report.schemas}
    assert by_schema["heat"].changed == by_schema["bulls"].changed == [("courtside_probe", "0001_initial")]

    probe_db.write("0001_initial", MIGRATIONS["0001_initial"])
    probe_db.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    plans = rollout_run(schemas=["heat", "bulls"], dry_run=True).plans
    assert plans["heat"] == plans["bulls"] == [(("courtside_probe", "0002_gadget_size"), False)]


def _pool_with_one_ready_and_one_stale():
    provisioning.pool_add()
    provisioning.pool_add()
    stale = provisioning.pool_add()
    PooledSchema.objects.filter(pk=stale.pk).update(fingerprint="0" * 64)  # built from other files than today's
    services.tenant_create(name="Miami Heat", schema_name="heat")  # takes one of the two fresh ones
    ready = PooledSchema.objects.exclude(pk=stale.pk).get()
    return ready.schema_name, stale.schema_name


def test_pool_schemas_stay_out_of_the_matrix_the_ledger_list_and_the_status_and_are_counted_on_one_line(
        public_tenant, operator_client):
    ready, stale = _pool_with_one_ready_and_one_stale()
    assert MigrationRecord.objects.filter(schema_name=ready).exists()  # the spare schema has its rows

    matrix = operator_client.get(MATRIX).content.decode()
    assert 'data-schema="heat"' in matrix
    assert "_pool_" not in matrix
    assert "pool: 1 ready, 1 stale" in matrix

    ledger = operator_client.get(LEDGER).content.decode()
    assert "_pool_" not in ledger
    assert "pool: 1 ready, 1 stale" in ledger
    assert ">heat<" in operator_client.get(LEDGER, {"schema_name": "heat"}).content.decode()
    # Asked for by name, or all spare schemas at once, they are there.
    assert f">{ready}<" in operator_client.get(LEDGER, {"schema_name": ready}).content.decode()
    spare = operator_client.get(LEDGER, {"kind": "spare"}).content.decode()
    assert ready in spare and stale in spare

    out = StringIO()
    call_command("migration_status", "--all", stdout=out)
    text = out.getvalue()
    assert "pool: 1 ready, 1 stale" in text
    assert "_pool_" not in text
    assert "heat: " in text

    out = StringIO()
    call_command("migration_status", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["pool"] == {"ready": 1, "stale": 1, "summary": "pool: 1 ready, 1 stale"}
    assert not [s for s in report["schemas"] if s["schema"].startswith("_pool_")]

    body = operator_client.get("/api/v1/schemas/status/").json()
    assert body["pool"] == {"ready": 1, "stale": 1, "summary": "pool: 1 ready, 1 stale"}
    assert "heat" in {s["schema"] for s in body["schemas"]}


def test_a_dropped_stale_pool_schema_takes_its_ledger_rows_along(public_tenant):
    stale = provisioning.pool_add()
    PooledSchema.objects.filter(pk=stale.pk).update(fingerprint="0" * 64)
    assert MigrationRecord.objects.filter(schema_name=stale.schema_name).exists()

    assert provisioning.pool_drop_stale() == 1

    assert not MigrationRecord.objects.filter(schema_name=stale.schema_name).exists()


def test_a_reused_name_starts_with_its_own_history_only(public_tenant):
    """Rows left by a dropped schema of the same name neither block the rename nor pose as the new tenant's."""
    services.tenant_create(name="Chicago Bulls", schema_name="bulls")  # pool empty: the in-place reference
    MigrationRecord.objects.create(schema_name="knicks", app_label="league", name="0001_initial", checksum="old",
                                   applied_at=MigrationRecord.objects.first().applied_at)

    provisioning.pool_add()
    services.tenant_create(name="New York Knicks", schema_name="knicks")

    assert not PooledSchema.objects.exists()
    assert _history("knicks") == _history("bulls")


def test_renaming_a_tenant_schema_moves_its_ledger_and_rollout_results_in_one_go(public_tenant):
    services.tenant_create(name="Miami Heat", schema_name="heat")
    before = _history("heat")
    rollout = Rollout.objects.create(status=Rollout.Status.PARTIAL, results={
        "heat": {"status": "pending", "error": "", "applied": []}})

    call_command("rename_schema", rename_from="heat", rename_to="miami", stdout=StringIO())

    assert Tenant.objects.filter(schema_name="miami").exists() and not Tenant.objects.filter(schema_name="heat")
    assert _history("miami") == before and not _history("heat")
    rollout.refresh_from_db()
    assert set(rollout.results) == {"miami"}
    with connection.cursor() as cursor:
        cursor.execute("SELECT nspname FROM pg_namespace WHERE nspname IN ('heat', 'miami')")
        assert [row[0] for row in cursor.fetchall()] == ["miami"]


@pytest.mark.parametrize("target, message", [
    ("lakers", "already exists"),
    ("_pool_abc", "reserved"),
    ("Bad-Name", "schema_name"),
])
def test_a_rename_to_a_taken_reserved_or_invalid_name_is_refused_and_changes_nothing(
        public_tenant, two_tenants, target, message):
    services.tenant_create(name="Miami Heat", schema_name="heat")
    before = _history("heat")

    with pytest.raises(CommandError, match=message):
        call_command("rename_schema", rename_from="heat", rename_to=target, stdout=StringIO())

    assert Tenant.objects.filter(schema_name="heat").exists()
    assert _history("heat") == before


def test_a_schema_left_without_a_tenant_is_not_adopted_by_a_new_tenant(public_tenant):
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "knicks"')

    with pytest.raises(ValidationError, match="exists without a tenant"):
        services.tenant_create(name="New York Knicks", schema_name="knicks")

    assert not Tenant.objects.filter(schema_name="knicks").exists()
