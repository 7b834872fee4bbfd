"""The operator's pages that list or sum tenants do the same work with 30 tenants as with 3: no query per tenant,
and no sidebar that lists every tenant (at 10,000 tenants either would make the page slow)."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tenants.models import Plan, Tenant

from .conftest import ledger, utc_today

PAGES = ["/admin/tenants/tenant/", "/admin/tenants/usageday/", "/admin/"]


def _add_tenants(count: int, start: int) -> None:
    """Rows only (these pages never open a tenant's schema), each with today's ledger row."""
    starter = Plan.objects.get(code="STARTER")
    for tenant in Tenant.objects.bulk_create(
        [Tenant(name=f"Club {i}", schema_name=f"club_{i}", plan=starter) for i in range(start, start + count)]
    ):
        ledger(tenant, utc_today(), api_calls=10)


def _visit(client, path: str) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured), response.content.decode()


@pytest.mark.parametrize("path", PAGES)
def test_the_page_runs_as_many_queries_with_30_tenants_as_with_3(operator_client, lakers_free, path):
    _add_tenants(2, 0)
    _visit(operator_client, path)  # warm: first-visit caches are not the page's
    few, _ = _visit(operator_client, path)

    _add_tenants(27, 2)
    _visit(operator_client, path)  # the dashboard's ledger summary is cached by the tenant count: recomputed once
    many, _ = _visit(operator_client, path)

    assert many == few


def test_the_usage_ledger_does_not_list_every_tenant_in_its_sidebar(operator_client, lakers_free):
    _add_tenants(30, 0)

    _, page = _visit(operator_client, "/admin/tenants/usageday/")
    filter_links = re.findall(r'href="\?[^"]*tenant__id__exact=', page)
    searched = operator_client.get("/admin/tenants/usageday/", {"q": "club_7"}).content.decode()

    assert filter_links == []
    assert "Club 7" in searched and "Club 8" not in searched  # the search box finds one tenant's rows


def test_the_tenant_list_counts_once_whatever_the_filter(operator_client, lakers_free):
    _add_tenants(30, 0)

    with CaptureQueriesContext(connection) as captured:
        assert operator_client.get("/admin/tenants/tenant/", {"status__exact": "active"}).status_code == 200
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()
              and "tenants_tenant" in q["sql"]]

    assert len(counts) == 1
