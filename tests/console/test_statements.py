"""Statements with overage: exact money for a tenant that changed plan mid-month and went past its quota,
through the selector, the admin page, the operator API (JSON, CSV, a bad month) and `manage.py statement`;
the overage price edited in dollars; `tenant stats`; and tenant A's statement never holds tenant B's calls."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command

from tenants import metering, services, statements
from tenants.models import Plan, PlanChange, Tenant, UsageDay
from tests.conftest import PUBLIC_HOST, TenantClient, tenant_host
from tests.console.conftest import ledger

pytestmark = pytest.mark.django_db

STATEMENT = "/api/v1/tenants/{schema}/statements/{month}/"


@pytest.fixture
def november(tenant_lakers, tenant_warriors):
    """Lakers: STARTER ($29.00, 1,000 calls a day, blocks) 1-20 November, PROFESSIONAL ($99.00, 10,000 a day,
    $0.50 per 1,000 calls past it) from 21 November; 2,500 and 30 calls past the quota on the 25th and 26th.
    Warriors: on PROFESSIONAL all month with 50,000 calls past its quota, which must never reach the Lakers."""
    starter, professional = Plan.objects.get(code="STARTER"), Plan.objects.get(code="PROFESSIONAL")
    Plan.objects.filter(pk=starter.pk).update(monthly_price_cents=2900, api_calls_per_day=1000,
                                              overage_price_cents_per_1000=None)
    Plan.objects.filter(pk=professional.pk).update(monthly_price_cents=9900, api_calls_per_day=10_000,
                                                   overage_price_cents_per_1000=50)
    october = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
    Tenant.objects.filter(pk=tenant_lakers.pk).update(plan=professional, created_at=october)
    Tenant.objects.filter(pk=tenant_warriors.pk).update(plan=professional, created_at=october)
    change = PlanChange.objects.create(tenant=tenant_lakers, from_plan=starter, to_plan=professional)
    PlanChange.objects.filter(pk=change.pk).update(changed_at=dt.datetime(2026, 11, 21, 9, tzinfo=dt.UTC))
    ledger(tenant_lakers, dt.date(2026, 11, 3), api_calls=1000, refused_daily_quota=5)  # at quota: blocked
    ledger(tenant_lakers, dt.date(2026, 11, 25), api_calls=12_500, mcp_calls=500)
    ledger(tenant_lakers, dt.date(2026, 11, 26), api_calls=10_030, mcp_calls=30)
    ledger(tenant_warriors, dt.date(2026, 11, 25), api_calls=60_000, mcp_calls=7)
    tenant_lakers.refresh_from_db()
    tenant_warriors.refresh_from_db()
    return tenant_lakers, tenant_warriors


def test_a_mid_month_upgrade_past_its_quota_bills_exact_figures(november):
    lakers, _ = november
    statement = statements.tenant_statement(tenant=lakers, month="2026-11", today=dt.date(2026, 12, 2))
    assert [(line.plan.code, line.first.day, line.last.day, line.days, line.amount_cents)
            for line in statement.lines] == [("STARTER", 1, 20, 20, 1933), ("PROFESSIONAL", 21, 30, 10, 3300)]
    # 2,530 calls past 10,000 a day at $0.50 per 1,000 = 126.5 cents, rounded half up
    assert [(line.plan.code, line.days, line.calls, line.amount_cents) for line in statement.overage_lines] == [
        ("PROFESSIONAL", 2, 2530, 127)]
    assert (statement.base_cents, statement.overage_cents, statement.total_cents) == (5233, 127, 5360)
    assert (statement.api_calls, statement.rest_calls, statement.mcp_calls, statement.refused_calls) == (
        23_530, 23_000, 530, 5)


def test_the_operator_api_answers_the_statement_as_json_and_csv(operator_client, november):
    api = TenantClient(PUBLIC_HOST)
    api.force_login(operator_client.user)
    body = api.get(STATEMENT.format(schema="lakers", month="2026-11")).json()
    assert (body["base"], body["overage_total"], body["total"], body["currency"]) == ("52.33", "1.27", "53.60", "USD")
    assert [(line["plan"], line["days"], line["amount"]) for line in body["lines"]] == [
        ("STARTER", 20, "19.33"), ("PROFESSIONAL", 10, "33.00")]
    assert body["overage"] == [{"plan": "PROFESSIONAL", "days": 2, "calls": 2530, "price_per_1000_calls": "0.50",
                                "amount": "1.27", "amount_cents": 127}]
    assert body["calls"] == {"total": 23_530, "rest": 23_000, "mcp": 530, "refused": 5}

    response = api.get(STATEMENT.format(schema="lakers", month="2026-11") + "statement.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["tenant", "month", "plan"]
    assert ["lakers", "2026-11", "overage: Professional", "", "", "2530 calls", "0.50 per 1000", "1.27",
            "USD"] in rows
    assert rows[-1] == ["lakers", "2026-11", "total", "", "", "", "", "53.60", "USD"]

    for month in ("2026-13", "26-11", "1500-01", "x" * 5000):
        bad = api.get(STATEMENT.format(schema="lakers", month=month))
        assert bad.status_code == 400, month
        assert bad.json()["error"]["code"] == "invalid_month"
    assert api.get(STATEMENT.format(schema="nosuch", month="2026-11")).status_code == 404


def test_a_statement_never_holds_another_tenants_usage_and_a_tenant_key_reads_none(november):
    lakers, warriors = november
    mine = statements.tenant_statement(tenant=lakers, month="2026-11", today=dt.date(2026, 12, 2))
    theirs = statements.tenant_statement(tenant=warriors, month="2026-11", today=dt.date(2026, 12, 2))
    assert mine.api_calls == 23_530 and mine.overage_cents == 127
    assert (theirs.api_calls, theirs.mcp_calls, theirs.overage_cents) == (60_000, 7, 2500)  # 50,000 over at $0.50
    _, raw = services.api_key_create(tenant=lakers, name="billing probe")
    for host in (PUBLIC_HOST, tenant_host("lakers")):
        client = TenantClient(host, HTTP_AUTHORIZATION=f"Api-Key {raw}")
        for schema in ("lakers", "warriors"):
            response = client.get(STATEMENT.format(schema=schema, month="2026-11"))
            assert response.status_code in (401, 403, 404), (host, schema, response.status_code)
            assert b"53.60" not in response.content and b"total_cents" not in response.content


def test_the_admin_statement_page_shows_overage_and_calls_by_surface(operator_client, november):
    lakers, _ = november
    html = operator_client.get(f"/admin/tenants/tenant/{lakers.pk}/statement/?month=2026-11").content.decode()
    assert "2530 calls past the daily quota on 2 days" in html and "$0.50 / 1,000 calls" in html
    assert 'id="statement-overage">$1.27<' in html and 'id="statement-total">$53.60<' in html
    assert 'id="calls-rest">23000<' in html and 'id="calls-mcp">530<' in html


def test_the_statement_command_prints_text_csv_and_json_and_refuses_a_bad_month(november, capsys):
    call_command("statement", "lakers", "2026-11")
    text = capsys.readouterr().out
    assert "total $53.60 USD" in text and "2,530 calls at $0.50 / 1,000" in text and "530 MCP" in text
    call_command("statement", "lakers", "2026-11", "--format", "json")
    assert json.loads(capsys.readouterr().out)["total_cents"] == 5360
    call_command("statement", "lakers", "2026-11", "--format", "csv")
    assert capsys.readouterr().out.splitlines()[-1] == "lakers,2026-11,total,,,,,53.60,USD"
    with pytest.raises(CommandError, match="is not a month"):
        call_command("statement", "lakers", "2026-13")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("statement", "public", "2026-11")


def test_tenant_stats_counts_tenants_by_plan_and_status(november, capsys):
    lakers, warriors = november
    Tenant.objects.filter(pk=warriors.pk).update(status=Tenant.Status.SUSPENDED)
    call_command("tenant", "stats", "--json")
    stats = json.loads(capsys.readouterr().out)
    professional = next(row for row in stats["plans"] if row["plan"] == "PROFESSIONAL")
    expected = Tenant.objects.exclude(schema_name="public").filter(plan__code="PROFESSIONAL")
    assert (professional["tenants"], professional["active"], professional["suspended"]) == (
        expected.count(), expected.filter(status="active").count(), 1)
    assert professional["mrr"] == f"{expected.filter(status='active').count() * 99:.2f}"
    call_command("tenant", "stats")
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:4] == ["plan", "tenants", "active", "suspended"]
    assert any(line.split()[0] == "PROFESSIONAL" for line in table.splitlines())


def test_the_overage_price_is_edited_in_dollars_and_empty_means_the_plan_blocks(operator_client):
    from tenants import quotas

    plan = Plan.objects.get(code="STARTER")
    data = {f: getattr(plan, f) if getattr(plan, f) is not None else "" for f in
            ("code", "name", *quotas.plan_limit_fields(), "max_task_priority", "max_task_batch_size",
             "max_task_chain_length", "max_active_task_runs")}
    url = f"/admin/tenants/plan/{plan.pk}/change/"
    assert 'name="overage_price"' in operator_client.get(url).content.decode()
    assert operator_client.post(url, {**data, "overage_price": "0.75"}).status_code == 302
    plan.refresh_from_db()
    assert plan.overage_price_cents_per_1000 == 75 and plan.overage_allowed
    assert 'value="0.75"' in operator_client.get(url).content.decode()
    bad = operator_client.post(url, {**data, "overage_price": "-1"})
    assert bad.status_code == 200 and b"errorlist" in bad.content
    plan.refresh_from_db()
    assert plan.overage_price_cents_per_1000 == 75
    assert operator_client.post(url, {**data, "overage_price": ""}).status_code == 302
    plan.refresh_from_db()
    assert plan.overage_price_cents_per_1000 is None and not plan.overage_allowed


def test_admission_lets_calls_past_the_quota_only_on_a_plan_that_bills_them(tenant_lakers):
    plan, _ = Plan.objects.update_or_create(code="METERED", defaults={
        "name": "Metered", "api_calls_per_day": 2, "max_concurrent_requests": None,
        "overage_price_cents_per_1000": None})
    Tenant.objects.filter(pk=tenant_lakers.pk).update(plan=plan)
    tenant_lakers.refresh_from_db()
    for _ in range(2):
        metering.release(metering.admit(tenant=tenant_lakers, authenticated=True))
    with pytest.raises(metering.DomainError) as refused:
        metering.admit(tenant=tenant_lakers, authenticated=True)
    assert refused.value.code == "daily_quota_exceeded"
    Plan.objects.filter(pk=plan.pk).update(overage_price_cents_per_1000=40)
    tenant_lakers.refresh_from_db()
    for _ in range(3):
        metering.release(metering.admit(tenant=tenant_lakers, authenticated=True))
    metering.calls_admit(tenant=tenant_lakers, calls=10)
    day = UsageDay.objects.get(tenant=tenant_lakers, date=metering.timezone.now().astimezone(dt.UTC).date())
    assert (day.api_calls, day.refused_daily_quota) == (15, 1)
