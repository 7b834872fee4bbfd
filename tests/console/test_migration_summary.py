"""The migration summary: counts from the ledger in a few statements, pending and drift named, drill-down links."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from schemas.graph import apps_for, load_graph
from schemas.models import MigrationRecord

pytestmark = pytest.mark.django_db


def latest_league():
    graph = load_graph()
    return next(k for k in reversed(graph.ordered) if k[0] == "league")


def test_the_summary_counts_current_pending_and_drifted_schemas(operator_client, tenant_lakers, tenant_warriors):
    cache.clear()
    html = operator_client.get("/admin/schemas/migrationrecord/summary/").content.decode()
    assert "2</strong> of 2 tenant schemas current" in html, html[html.find("summary-line"):][:300]
    app, name = latest_league()
    # warriors loses its latest league migration from the ledger; lakers' copy of it "changed" on disk.
    MigrationRecord.objects.filter(schema_name="warriors", app_label=app, name=name).delete()
    MigrationRecord.objects.filter(schema_name="lakers", app_label=app, name=name).update(checksum="0" * 64)
    cache.clear()
    html = operator_client.get("/admin/schemas/migrationrecord/summary/").content.decode()
    line = html[html.find('id="migration-summary-line"'):].split("</p>")[0]
    assert "0</strong> of 2 tenant schemas current" in line
    assert f"{app}.{name} pending in 1" in line and f"drift in 1: {app}.{name} in lakers" in line
    assert f"app_label__exact={app}" in html
    for href in ("/admin/schemas/migrationrecord/matrix/?problems=1",
                 f"/admin/schemas/migrationrecord/?app_label__exact={app}&q={name}"):
        assert operator_client.get(href).status_code == 200


def test_the_summary_cost_does_not_grow_with_schemas(django_assert_max_num_queries, tenant_lakers):
    from schemas.selectors import ledger_summary

    assert set(apps_for("__tenant__")) >= {"league"}
    with django_assert_max_num_queries(10):
        ledger_summary()


def test_a_tenant_admin_has_no_migration_summary(lakers_client):
    assert lakers_client.get("/admin/schemas/migrationrecord/summary/").status_code == 404
