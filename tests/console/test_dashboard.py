"""The operator's dashboard at /admin/: the figures equal what the database holds, and each opens its list."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from configuration import services as configuration_services
from console import selectors
from registry import registration as registry_services
from tasks import services as task_services
from tasks.models import Priority, Status, TaskRun
from tenants.models import Plan, Tenant, UsageDay
from tests.conftest import TenantClient, tenant_host
from tests.console.conftest import ledger, put_on_plan, utc_today
from tests.console.html import figures, links

pytestmark = pytest.mark.django_db


@pytest.fixture
def business(tenant_lakers, tenant_warriors):
    """Two customers on two plans, a month of calls, refusals, runs in the queue, a critical service."""
    lakers = put_on_plan(tenant_lakers, "PROFESSIONAL")
    warriors = put_on_plan(tenant_warriors, "STARTER")
    Tenant.objects.filter(pk=warriors.pk).update(status=Tenant.Status.SUSPENDED)
    today = utc_today()
    ledger(lakers, today, api_calls=120, refused_daily_quota=4, refused_burst=2)
    ledger(warriors, today, api_calls=30, refused_concurrency=1)
    ledger(lakers, today - dt.timedelta(days=10), api_calls=1000)
    ledger(lakers, today - dt.timedelta(days=40), api_calls=99999)  # outside the 30 days
    for priority in (Priority.CRITICAL, Priority.LOW, Priority.LOW):
        task_services.task_submit(name="system.noop", tenant=lakers, priority=priority, by_operator=True)
    failed = task_services.task_submit(name="system.noop", tenant=warriors, by_operator=True)
    TaskRun.objects.filter(pk=failed.pk).update(status=Status.FAILED, finished_at=timezone.now())
    registry_services.service_register(service_id="etl-1", name="etl", host="etl.internal", port=8080)
    configuration_services.entry_set(key="api.page_size", value=25, changed_by="test")
    return lakers, warriors


def test_every_figure_is_what_the_database_holds(operator_client, business):
    response = operator_client.get("/admin/")
    assert response.status_code == 200
    shown = figures(response.content.decode())
    assert shown["tenants_total"] == "2" and shown["tenants_active"] == "1 active"
    assert shown["tenants_suspended"] == "1 suspended"
    professional, starter = Plan.objects.get(code="PROFESSIONAL"), Plan.objects.get(code="STARTER")
    # Only the active tenant is billed: the suspended STARTER tenant adds nothing.
    assert shown["mrr"] == f"${professional.monthly_price_cents / 100:,.2f}"
    assert starter.monthly_price_cents > 0
    assert shown["calls_today"] == "150 today" and shown["calls_30_days"] == "1150 in 30 days"
    assert shown["refusals_total"] == "7"
    assert shown["queued_total"] == "3" and shown["failed_last_hour"] == "1 failed in the last hour"
    assert shown["config_changes_today"] == "1"
    html = response.content.decode()
    assert 'data-priority="Critical"' in html and 'data-check="ttl"' in html  # the failing check, named
    assert "etl-1" in html


def test_each_figure_links_to_the_list_behind_it(operator_client, business):
    html = operator_client.get("/admin/").content.decode()
    hrefs = set(links(html, '<div id="courtside-dashboard"', "</div>\n\n"))
    assert len(hrefs) >= 15
    for href in sorted(hrefs):
        response = operator_client.get(href)
        assert response.status_code == 200, href
    # The filtered lists hold what the figure counted.
    suspended = operator_client.get("/admin/tenants/tenant/?status__exact=suspended").content.decode()
    assert "warriors" in suspended and "lakers" not in suspended.split("result_list")[-1]
    failed = next(h for h in hrefs if "status__exact=failed" in h)
    page = operator_client.get(failed).content.decode()
    assert "1 task run" in page or "1 result" in page


def test_refused_calls_are_counted_by_reason_as_they_happen(operator_client, tenant_lakers):
    from tests.tenants.conftest import put_on_plan as on_plan

    plan = Plan.objects.create(code="TINY", name="Tiny", api_calls_per_day=1)
    on_plan(tenant_lakers, plan)
    from tenants import services as tenant_services

    _, raw = tenant_services.api_key_create(tenant=tenant_lakers, name="t", scope="read")
    client = TenantClient(tenant_host("lakers"))
    statuses = [client.get("/api/v1/teams/", HTTP_AUTHORIZATION=f"Api-Key {raw}").status_code for _ in range(3)]
    assert statuses == [200, 429, 429]
    row = UsageDay.objects.get(tenant=tenant_lakers, date=utc_today())
    assert (row.api_calls, row.refused_daily_quota) == (1, 2)
    assert selectors.dashboard().refusals["daily_quota_exceeded"] == 2


def test_the_query_count_does_not_grow_with_the_tenants(django_assert_max_num_queries, business):
    from django.core.cache import cache

    cache.clear()  # the migration summary is cached: count its statements both times
    # About 15 statements, each preceded by django-tenants' SET search_path.
    with django_assert_max_num_queries(40) as few:
        selectors.dashboard()
    Tenant.objects.bulk_create([Tenant(schema_name=f"bulk{i}", name=f"Bulk {i}",
                                       plan=Plan.objects.get(code="FREE")) for i in range(50)])
    cache.clear()
    with django_assert_max_num_queries(len(few.captured_queries)):
        board = selectors.dashboard()
    assert board.tenants_total == 52


def test_a_tenant_admin_gets_its_own_home_never_the_operator_dashboard(lakers_client, business):
    response = lakers_client.get("/admin/")
    assert response.status_code == 200
    assert b"courtside-dashboard" not in response.content and b"Monthly recurring revenue" not in response.content
