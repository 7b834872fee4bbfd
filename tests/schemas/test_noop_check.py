"""The no-op migration check is set-based (issue 19.2): one computation for every schema, exact per schema.

The fast path groups schemas by a fingerprint of their django_migrations (and of their columns) and plans once per
distinct state: these tests fail if it ever reports "all current" while one schema lacks a migration, has an extra
one, holds a changed checksum, or was built from a .sql that changed since; and if the no-op check's number of
statements grows with the number of schemas.
"""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from schemas.selectors import applied_migrations_by_schema, ledger_summary
from schemas.services import drift_report, rollout_run

from .conftest import MIGRATIONS, PROBE

SECOND = "0002_gadget_size"


def rollout(*args, **options):
    call_command("rollout", *args, stdout=StringIO(), stderr=StringIO(), **options)


def status(**options):
    out = StringIO()
    call_command("migration_status", stdout=out, **options)
    return out.getvalue()


def problems(report) -> dict[str, dict]:
    return {s.schema: {"pending": s.pending, "gone": s.gone, "changed": s.changed,
                       "missing": s.missing_tables + s.missing_columns}
            for s in report.problem_schemas}


@pytest.fixture
def current(probe):
    """Both tenants at the probe's 0002, checked clean by the fast path, before a test breaks one of them."""
    probe.write(SECOND, MIGRATIONS[SECOND])
    rollout()
    report = drift_report()
    assert problems(report) == {} and report.changed_files == [] and report.gone_files == []
    status(check=True)  # clean: does not raise
    return probe


def test_a_schema_missing_a_migration_is_found_and_only_that_one(current):
    current.execute("warriors", "DELETE FROM django_migrations WHERE app = %s AND name = %s", [PROBE, SECOND])

    report = drift_report()
    assert problems(report) == {"warriors": {"pending": [(PROBE, SECOND)], "gone": [], "changed": [], "missing": []}}
    plans = rollout_run(dry_run=True).plans
    assert plans["warriors"] == [((PROBE, SECOND), False)] and plans["lakers"] == []
    assert applied_migrations_by_schema(["lakers", "warriors"])["lakers"] != \
        applied_migrations_by_schema(["lakers", "warriors"])["warriors"]
    with pytest.raises(CommandError, match="1 schema"):
        status(check=True)


def test_a_schema_with_an_extra_applied_migration_is_found(current):
    current.execute("lakers", "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, now())",
                    [PROBE, "0009_ghost"])

    report = drift_report()
    assert problems(report) == {"lakers": {"pending": [], "gone": [(PROBE, "0009_ghost")], "changed": [],
                                           "missing": []}}
    assert report.gone_files == [{"app": PROBE, "name": "0009_ghost", "schemas": ["lakers"]}]
    with pytest.raises(CommandError):
        status(check=True)


def test_a_schema_whose_recorded_checksum_differs_is_drift_in_that_schema_only(current):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE schemas_migrationrecord SET checksum = %s WHERE schema_name = 'warriors' "
                       "AND app_label = %s AND name = %s AND outcome = 'applied'", ["0" * 64, PROBE, SECOND])

    report = drift_report()
    assert problems(report) == {"warriors": {"pending": [], "gone": [], "changed": [(PROBE, SECOND)], "missing": []}}
    [entry] = report.changed_files
    assert (entry["app"], entry["name"], entry["schemas"]) == (PROBE, SECOND, ["warriors"])
    summary = ledger_summary()  # the summary page's figures see it too
    assert summary["drifted_schemas"] == 1
    assert [(c["name"], c["schemas"]) for c in summary["changed"]] == [(SECOND, 1)]
    with pytest.raises(CommandError):
        status(check=True)


def test_a_schema_lacking_a_column_it_claims_is_found_among_identical_ones(current):
    current.execute("lakers", "ALTER TABLE courtside_probe_gadget DROP COLUMN name")

    report = drift_report()
    assert problems(report) == {"lakers": {"pending": [], "gone": [], "changed": [],
                                           "missing": ["courtside_probe.courtside_probe_gadget.name"]}}


def test_a_sql_file_migration_whose_sql_changed_is_drift_in_every_schema(current, tmp_path):
    source = tmp_path / "003_colour.sql"
    source.write_text("-- version: 003\n-- name: add_gadget_colour\n-- type: schema\n-- up:\n"
                      "ALTER TABLE courtside_probe_gadget ADD COLUMN colour text;\n"
                      "-- down:\nALTER TABLE courtside_probe_gadget DROP COLUMN colour;\n")
    call_command("sqlmigration", PROBE, "--from", str(source), stdout=StringIO())
    rollout()
    assert drift_report().changed_files == []

    source.write_text(source.read_text().replace("colour text", "colour varchar(20)"))

    report = drift_report()
    [entry] = report.changed_files
    assert entry["app"] == PROBE and entry["schemas"] == ["lakers", "warriors"]
    assert {s.schema for s in report.problem_schemas} == {"lakers", "warriors"}


def _clone_tenants(count: int, start: int) -> list[str]:
    """`count` more tenant schemas holding what lakers holds in django_migrations (tables left out: the no-op
    check plans from django_migrations; a clone's missing tables only add problems, not statements)."""
    from tenants.models import Tenant

    names = [f"noop_clone_{start + i:03d}" for i in range(count)]
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f'CREATE SCHEMA "{name}"')
            cursor.execute(f'CREATE TABLE "{name}".django_migrations (LIKE lakers.django_migrations INCLUDING ALL)')
            cursor.execute(f'INSERT INTO "{name}".django_migrations SELECT * FROM lakers.django_migrations')
    lakers = Tenant.objects.get(schema_name="lakers")
    Tenant.objects.bulk_create([Tenant(schema_name=name, name=name, plan_id=lakers.plan_id) for name in names])
    return names


def _statements(func) -> int:
    connection.set_schema_to_public()
    with CaptureQueriesContext(connection) as captured:
        func()
    return len(captured.captured_queries)


def test_the_no_op_checks_statements_do_not_grow_with_the_number_of_schemas(current):
    checks = {"rollout": rollout, "migration_status": lambda: status(), "summary": ledger_summary}
    _clone_tenants(3, 0)
    for check in checks.values():
        check()  # first-call costs (content types, caches) are not the check's
    few = {label: _statements(check) for label, check in checks.items()}
    _clone_tenants(27, 3)  # 3 -> 30 clones

    many = {label: _statements(check) for label, check in checks.items()}

    assert many == few
    plans = rollout_run(dry_run=True).plans
    assert len(plans) == 32 and not any(plans.values())  # 30 clones and two tenants, all current


# -- the kept state of django_migrations (migration 0005): exact whatever happens to a table ----------------------


def _kept(schema: str) -> bool:
    """True when the no-op check takes this schema's fingerprint from schemas_appliedstate, without reading it."""
    from schemas.selectors import applied_fingerprints

    return applied_fingerprints([schema])[schema][1].startswith("kept:")


def test_migrated_tenants_are_kept_and_a_raw_sql_edit_of_one_is_still_found(current):
    assert _kept("lakers") and _kept("warriors")  # migrated by rollout: adopted by the executor
    current.execute("warriors", "DELETE FROM django_migrations WHERE app = %s AND name = %s", [PROBE, SECOND])
    current.execute("lakers", "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, now())",
                    [PROBE, "0009_ghost"])

    assert _kept("lakers") and _kept("warriors")
    assert problems(drift_report()) == {
        "warriors": {"pending": [(PROBE, SECOND)], "gone": [], "changed": [], "missing": []},
        "lakers": {"pending": [], "gone": [(PROBE, "0009_ghost")], "changed": [], "missing": []}}


def test_a_table_whose_trigger_was_disabled_is_read_directly_and_its_change_found(current):
    from schemas.ledger import applied_state_adopt

    current.execute("lakers", "ALTER TABLE django_migrations DISABLE TRIGGER schemas_applied_state_delete")
    current.execute("lakers", "DELETE FROM django_migrations WHERE app = %s AND name = %s", [PROBE, SECOND])

    assert not _kept("lakers") and _kept("warriors")
    assert problems(drift_report()) == {"lakers": {"pending": [(PROBE, SECOND)], "gone": [], "changed": [],
                                                   "missing": []}}
    current.execute("lakers", "INSERT INTO django_migrations (app, name, applied) VALUES (%s, %s, now())",
                    [PROBE, SECOND])
    applied_state_adopt(schema_names=["lakers"])  # as the executor does after migrating it: triggers back, recounted
    assert _kept("lakers") and problems(drift_report()) == {}


def test_a_truncated_table_and_a_renamed_schema_keep_an_exact_state(current):
    from schemas.ledger import ledger_schema_rename

    with connection.cursor() as cursor:
        cursor.execute("SELECT app, name, applied FROM warriors.django_migrations ORDER BY id")
        rows = cursor.fetchall()
    current.execute("warriors", "TRUNCATE django_migrations")
    assert _kept("warriors")
    assert [s.schema for s in drift_report().problem_schemas] == ["warriors"]
    assert applied_migrations_by_schema(["warriors"])["warriors"] == frozenset()
    with connection.cursor() as cursor:  # put back as it was: the insert trigger keeps the count
        cursor.executemany("INSERT INTO warriors.django_migrations (app, name, applied) VALUES (%s, %s, %s)", rows)
    assert _kept("warriors") and problems(drift_report()) == {}

    with connection.cursor() as cursor:  # as a pool sign-up renames a spare: the table (and its oid) moves along
        cursor.execute('ALTER SCHEMA "warriors" RENAME TO "warriors_renamed"')
        ledger_schema_rename(old_name="warriors", new_name="warriors_renamed")
        try:
            fingerprints = applied_migrations_by_schema(["lakers", "warriors_renamed"])
            assert _kept("warriors_renamed")
            assert fingerprints["warriors_renamed"] == fingerprints["lakers"]
        finally:
            cursor.execute('ALTER SCHEMA "warriors_renamed" RENAME TO "warriors"')
            ledger_schema_rename(old_name="warriors_renamed", new_name="warriors")


def test_kept_and_read_schemas_in_one_state_plan_alike_and_statements_stay_flat(current):
    from schemas.ledger import applied_state_adopt

    read = _clone_tenants(3, 0)  # created by SQL, rows inserted before any trigger: read directly
    assert not any(_kept(name) for name in read)
    few = _statements(rollout)
    kept = _clone_tenants(30, 3)
    applied_state_adopt(schema_names=kept)
    assert all(_kept(name) for name in kept)

    assert _statements(rollout) == few
    applied = applied_migrations_by_schema(["lakers", *read, *kept])
    assert len({applied[name] for name in ["lakers", *read, *kept]}) == 1
    current.execute(kept[17], "DELETE FROM django_migrations WHERE app = %s AND name = %s", [PROBE, SECOND])
    plans = rollout_run(dry_run=True).plans
    assert [name for name, plan in plans.items() if plan] == [kept[17]]
    assert plans[kept[17]] == [((PROBE, SECOND), False)]
