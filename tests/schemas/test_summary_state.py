"""schemas_ledgerstate follows the ledger through every kind of write, so the summary built on it stays exact.

PostgreSQL's triggers (migration 0004) keep one row per schema: its applied ledger rows and their digest. These
tests compare it with the same figures recomputed from the ledger itself after each way the ledger is written:
the executor's bulk inserts, an undo, a schema rename (sign-up from the pool), a forget, raw SQL, TRUNCATE.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from schemas.ledger import ledger_record, ledger_schema_forget, ledger_schema_rename
from schemas.models import LedgerState, MigrationRecord

PLAN = [(("league", "0001_initial"), False), (("league", "0002_x"), False), (("tenants", "0001_initial"), False)]


def _recomputed() -> dict[str, tuple[int, int, int]]:
    """{schema: (rows, h1, h2)} from the ledger's applied rows, the digest as migration 0004 defines it."""
    half = "('x' || substr(md5(app_label || chr(31) || name || chr(31) || checksum), {}, 16))::bit(64)::bigint"
    m = 2**64
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT schema_name, count(*), sum({half.format(1)}::numeric), sum({half.format(17)}::numeric) "
                       f"FROM schemas_migrationrecord WHERE outcome = 'applied' GROUP BY schema_name")
        return {schema: (rows, int(h1) % m, int(h2) % m) for schema, rows, h1, h2 in cursor.fetchall()}


def _state() -> dict[str, tuple[int, int, int]]:
    """The triggers' rows, schemas left with no applied row (all undone or moved) being the empty state."""
    return {s.schema_name: (s.rows, int(s.h1), int(s.h2)) for s in LedgerState.objects.all() if s.rows}


def _record(schema: str, plan=PLAN) -> None:
    ledger_record(schema_name=schema, plan=plan, checksums={key: f"{schema}-{key[1]}"[:64] for key, _ in plan})


@pytest.mark.django_db
def test_the_state_follows_inserts_undos_renames_forgets_raw_sql_and_truncate():
    assert _state() == _recomputed()  # what the migration's backfill and the test database's own writes left

    for schema in ("state_a", "state_b", "_pool_state_c"):
        _record(schema)
    assert _state() == _recomputed()
    assert _state()["state_a"][0] == 3
    # The same migrations with the same checksums are the same state, whichever schema holds them.
    MigrationRecord.objects.bulk_create([
        MigrationRecord(schema_name="state_d", app_label=r.app_label, name=r.name, checksum=r.checksum,
                        applied_at=timezone.now()) for r in MigrationRecord.objects.filter(schema_name="state_a")])
    assert _state()["state_d"] == _state()["state_a"]

    _record("state_a", plan=[(PLAN[1][0], True)])  # undone: the row stays, marked
    assert _state() == _recomputed() and _state()["state_a"][0] == 2
    assert _state()["state_a"] != _state()["state_d"]

    ledger_schema_rename(old_name="_pool_state_c", new_name="state_c")
    assert _state() == _recomputed() and "_pool_state_c" not in _state() and _state()["state_c"][0] == 3

    ledger_schema_forget(schema_name="state_b")
    assert _state() == _recomputed() and "state_b" not in _state()

    with connection.cursor() as cursor:
        cursor.execute("UPDATE schemas_migrationrecord SET checksum = 'edited' WHERE schema_name = 'state_c' "
                       "AND name = '0002_x'")
    assert _state() == _recomputed() and _state()["state_c"] != _state()["state_d"]

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # Django's deferred foreign keys would refuse TRUNCATE
        cursor.execute("TRUNCATE schemas_migrationrecord")
    assert _state() == _recomputed() == {}
