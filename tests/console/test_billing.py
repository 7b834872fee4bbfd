"""Billing in money: plan prices in dollars in the admin, and a monthly statement per tenant pro-rated by plan."""

from __future__ import annotations

import datetime as dt

import pytest

from tenants import quotas, selectors
from tenants.models import Plan, PlanChange, Tenant
from tests.console.conftest import ledger

pytestmark = pytest.mark.django_db


def test_the_plan_list_shows_prices_in_dollars_not_cents(operator_client):
    professional = Plan.objects.get(code="PROFESSIONAL")
    html = operator_client.get("/admin/tenants/plan/").content.decode()
    dollars = f"${professional.monthly_price_cents / 100:,.2f}"
    assert dollars in html and f">{professional.monthly_price_cents}<" not in html


def test_a_price_is_edited_in_dollars_and_stored_in_cents(operator_client):
    plan = Plan.objects.get(code="STARTER")
    page = operator_client.get(f"/admin/tenants/plan/{plan.pk}/change/").content.decode()
    assert 'name="monthly_price"' in page and f'value="{plan.monthly_price_cents / 100:.2f}"' in page
    data = {f: getattr(plan, f) if getattr(plan, f) is not None else "" for f in
            ("code", "name", *quotas.plan_limit_fields(), "max_task_priority", "max_task_batch_size",
             "max_task_chain_length", "max_active_task_runs")}
    response = operator_client.post(f"/admin/tenants/plan/{plan.pk}/change/", {**data, "monthly_price": "12.34"})
    assert response.status_code == 302, response.content.decode()[:2000]
    plan.refresh_from_db()
    assert plan.monthly_price_cents == 1234
    bad = operator_client.post(f"/admin/tenants/plan/{plan.pk}/change/", {**data, "monthly_price": "-5"})
    assert bad.status_code == 200 and b"errorlist" in bad.content
    plan.refresh_from_db()
    assert plan.monthly_price_cents == 1234


@pytest.fixture
def november_upgrade(tenant_lakers):
    """Lakers on STARTER since before November, PROFESSIONAL from 21 November on."""
    starter, professional = Plan.objects.get(code="STARTER"), Plan.objects.get(code="PROFESSIONAL")
    Tenant.objects.filter(pk=tenant_lakers.pk).update(plan=professional,
                                                      created_at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC))
    change = PlanChange.objects.create(tenant=tenant_lakers, from_plan=starter, to_plan=professional)
    PlanChange.objects.filter(pk=change.pk).update(changed_at=dt.datetime(2026, 11, 21, 9, tzinfo=dt.UTC))
    ledger(tenant_lakers, dt.date(2026, 11, 3), api_calls=700, refused_daily_quota=2)
    ledger(tenant_lakers, dt.date(2026, 11, 25), api_calls=300)
    tenant_lakers.refresh_from_db()
    return tenant_lakers, starter, professional


def test_a_statement_prorates_each_plan_by_its_days(november_upgrade):
    lakers, starter, professional = november_upgrade
    statement = selectors.tenant_statement(tenant=lakers, month="2026-11", today=dt.date(2026, 12, 2))
    assert [(line.plan, line.first.day, line.last.day, line.days) for line in statement.lines] == [
        (starter, 1, 20, 20), (professional, 21, 30, 10)]
    expected = round(starter.monthly_price_cents * 20 / 30) + round(professional.monthly_price_cents * 10 / 30)
    assert statement.total_cents == expected
    assert (statement.api_calls, statement.refused_calls, statement.overage_cents) == (1000, 2, 0)


def test_the_statement_page_and_its_csv(operator_client, november_upgrade):
    lakers, starter, professional = november_upgrade
    url = f"/admin/tenants/tenant/{lakers.pk}/statement/?month=2026-11"
    html = operator_client.get(url).content.decode()
    total = selectors.tenant_statement(tenant=lakers, month="2026-11").total_cents
    assert f"${total / 100:,.2f}" in html and "20 / 30" in html and "10 / 30" in html
    csv = operator_client.get(url + "&format=csv")
    assert csv["Content-Type"].startswith("text/csv")
    rows = csv.content.decode().splitlines()
    assert rows[0].startswith("tenant,month,plan") and rows[-1].endswith(f"total,,,,,{total / 100:.2f},USD")
    change = operator_client.get(f"/admin/tenants/tenant/{lakers.pk}/change/").content.decode()
    assert 'class="statement-link"' in change
    bad = operator_client.get(f"/admin/tenants/tenant/{lakers.pk}/statement/?month=2026-13")
    assert bad.status_code == 200 and b"is not a month" in bad.content


def test_a_tenant_admin_has_no_statement_of_anyone(lakers_client, tenant_warriors, tenant_lakers):
    for tenant in (tenant_lakers, tenant_warriors):
        assert lakers_client.get(f"/admin/tenants/tenant/{tenant.pk}/statement/").status_code == 404
