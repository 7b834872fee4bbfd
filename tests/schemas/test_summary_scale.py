"""The migration summary page at many tenants (issue 19): its cost follows the distinct ledger states, not tenants.

Uncached at 10,000 schemas the summary scanned the whole ledger (56 tenant migrations x 10,000 schemas). It now
groups the tenants by their row in schemas_ledgerstate (kept by PostgreSQL triggers on the ledger) and reads one
schema's ledger rows per distinct state. These tests fail if the page's statements or the ledger rows it reads
grow with the number of tenants, or if its figures ever differ from a count done schema by schema.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from schemas.graph import apps_for, load_graph
from schemas.models import MigrationRecord
from schemas.selectors import ledger_summary
from tenants.models import Tenant

SUMMARY = "/admin/schemas/migrationrecord/summary/"


@pytest.fixture
def graph():
    return load_graph()


@pytest.fixture
def expected(graph):
    tenant_apps = set(apps_for("__tenant__"))
    return [key for key in graph.ordered if key[0] in tenant_apps]


def _current_rows(schema: str, expected, graph) -> list[MigrationRecord]:
    return [MigrationRecord(schema_name=schema, app_label=app, name=name, checksum=graph.checksum((app, name)),
                            applied_at=timezone.now(), applied_by="test") for app, name in expected]


def _tenants_current(names: list[str], expected, graph) -> None:
    """Tenant rows (no schemas: the summary reads the ledger alone) whose ledger holds every tenant migration."""
    plan_id = Tenant.objects.get(schema_name="lakers").plan_id
    Tenant.objects.bulk_create([Tenant(schema_name=name, name=name, plan_id=plan_id) for name in names])
    MigrationRecord.objects.bulk_create([row for name in names for row in _current_rows(name, expected, graph)])


@pytest.fixture
def everyone_current(two_tenants, expected, graph):
    """Every tenant schema of the test database with a complete, unchanged ledger (in this test's transaction)."""
    names = list(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))
    MigrationRecord.objects.filter(schema_name__in=names).delete()
    MigrationRecord.objects.bulk_create([row for name in names for row in _current_rows(name, expected, graph)])
    return names


def _ledger_rows_read(sql: str) -> int:
    """Rows the statement read from the ledger table (returned or filtered out), by EXPLAIN ANALYZE, with fresh
    statistics (as autovacuum keeps them in production)."""
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {MigrationRecord._meta.db_table}")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    total = 0

    def walk(node):
        nonlocal total
        if node.get("Relation Name") == MigrationRecord._meta.db_table:
            total += (node["Actual Rows"] + node.get("Rows Removed by Filter", 0)) * node["Actual Loops"]
        for child in node.get("Plans", ()):
            walk(child)

    walk(plan[0]["Plan"])
    return total


def _page(operator_client) -> tuple[int, int, str]:
    """The summary page uncached: (statements, ledger rows its summary statement read, page text)."""
    cache.clear()
    connection.set_schema_to_public()
    with CaptureQueriesContext(connection) as captured:
        response = operator_client.get(SUMMARY)
    assert response.status_code == 200
    [summary_sql] = [q["sql"] for q in captured.captured_queries if "schemas_ledgerstate" in q["sql"]]
    return len(captured.captured_queries), _ledger_rows_read(summary_sql), response.content.decode()


def test_the_summary_pages_statements_and_ledger_reads_do_not_grow_with_the_tenants(
        everyone_current, operator_client, expected, graph):
    _tenants_current([f"summary_clone_{i:03d}" for i in range(3)], expected, graph)
    _page(operator_client)  # first-request costs (sessions, content types) are not the page's
    statements_few, read_few, page_few = _page(operator_client)
    few = ledger_summary()
    _tenants_current([f"summary_clone_{i:03d}" for i in range(3, 30)], expected, graph)

    statements_many, read_many, page = _page(operator_client)
    many = ledger_summary()

    assert statements_many == statements_few
    # The old one-scan summary read every row (10x more here). On a table this small the planner may scan it
    # whole once rather than look one schema up; past that it reads the representative's rows through the index.
    assert read_many <= read_few
    assert (few["states"], many["states"]) == (1, 1)
    total = len(everyone_current) + 30
    assert (many["schemas"], many["current"], many["pending"], many["changed"]) == (total, total, [], [])
    assert f"<strong>{total}</strong> of {total} tenant schemas current" in page
    assert f"<strong>{total - 27}</strong> of {total - 27} tenant schemas current" in page_few


def _by_hand(expected, graph) -> dict:
    """The summary's figures counted schema by schema in Python, from every ledger row."""
    names = set(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))
    held: dict[str, dict] = {name: {} for name in names}
    for schema, app, name, checksum in MigrationRecord.objects.filter(
            outcome="applied", schema_name__in=names).values_list("schema_name", "app_label", "name", "checksum"):
        held[schema][(app, name)] = checksum
    wanted = set(expected)

    def bad(key, checksum):
        return checksum != "" and checksum != graph.checksum(key)

    holding = Counter(key for rows in held.values() for key in rows if key in wanted)
    changed = Counter(key for rows in held.values() for key, c in rows.items() if key in wanted and bad(key, c))
    return {
        "schemas": len(names),
        "current": sum(1 for rows in held.values()
                       if all(k in rows for k in expected) and not any(bad(k, rows[k]) for k in expected)),
        "drifted": sum(1 for rows in held.values() if any(k in wanted and bad(k, c) for k, c in rows.items())),
        "pending": {key: len(names) - holding[key] for key in expected if len(names) - holding[key]},
        "changed": {key: count for key, count in changed.items()},
        "examples": {key: sorted(s for s, rows in held.items() if key in rows and bad(key, rows[key]))[:3]
                     for key in changed},
    }


def test_the_summary_counts_each_schema_right_among_many_alike(everyone_current, expected, graph):
    clones = [f"summary_clone_{i:03d}" for i in range(30)]
    _tenants_current(clones, expected, graph)
    last, second_last = expected[-1], expected[-2]
    # One clone lacks the last migration, two hold a changed file of the second last, one has no ledger at all,
    # one is undone back past the last one (the row stays, marked undone).
    MigrationRecord.objects.filter(schema_name=clones[4], app_label=last[0], name=last[1]).delete()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE schemas_migrationrecord SET checksum = %s WHERE schema_name = ANY(%s) "
                       "AND app_label = %s AND name = %s", ["0" * 64, [clones[9], clones[7]], *second_last])
    MigrationRecord.objects.filter(schema_name=clones[12]).delete()
    MigrationRecord.objects.filter(schema_name=clones[20], app_label=last[0], name=last[1]).update(
        outcome="undone", undone_at=timezone.now())

    summary = ledger_summary()
    truth = _by_hand(expected, graph)

    assert summary["schemas"] == truth["schemas"] == len(everyone_current) + 30
    assert summary["current"] == truth["current"] == truth["schemas"] - 5
    assert summary["drifted_schemas"] == truth["drifted"] == 2
    assert {(p["app"], p["name"]): p["schemas"] for p in summary["pending"]} == truth["pending"]
    assert truth["pending"][last] == 3 and truth["pending"][expected[0]] == 1
    assert {(c["app"], c["name"]): c["schemas"] for c in summary["changed"]} == truth["changed"] == {second_last: 2}
    assert [c["examples"] for c in summary["changed"]] == [truth["examples"][second_last]] \
        == [[clones[7], clones[9]]]
    # current; lacking the last (its row deleted or marked undone: alike); drifted; no ledger
    assert summary["states"] == 4


def test_a_tenant_among_others_in_its_state_is_an_example_of_its_drift(everyone_current, expected, graph):
    """Schemas in one drifted state are one group: the examples still name up to three of them, by name."""
    clones = [f"summary_clone_{i:03d}" for i in range(10)]
    _tenants_current(clones, expected, graph)
    key = expected[0]
    MigrationRecord.objects.filter(schema_name__in=clones[2:7], app_label=key[0], name=key[1]).update(
        checksum="f" * 64)

    [entry] = ledger_summary()["changed"]

    assert (entry["app"], entry["name"], entry["schemas"]) == (*key, 5)
    assert entry["examples"] == clones[2:5]
