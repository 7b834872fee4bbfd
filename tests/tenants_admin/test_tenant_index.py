"""The tenant admin's home: its plan, its calls today and over 30 days, its usage against the plan's quotas."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django_tenants.utils import schema_context

from league.models import StatModel
from tenants.models import Plan, Tenant
from tests.conftest import make_user
from tests.console.html import figures
from tests.tenants_admin.conftest import ledger, put_on_plan, utc_today

pytestmark = pytest.mark.django_db


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def quota_row(page: str, name: str) -> dict:
    row = re.search(rf'<tr data-quota="{name}"[^>]*>(.*?)</tr>', page, re.S)
    assert row, name
    return figures(row.group(1))


def test_the_index_shows_the_plan_and_usage_against_its_quotas(tenant_lakers, lakers_client):
    lakers = put_on_plan(tenant_lakers, "STARTER")
    plan = Plan.objects.get(code="STARTER")
    today = utc_today()
    ledger(lakers, today, api_calls=37)
    ledger(lakers, today - dt.timedelta(days=3), api_calls=100)
    ledger(lakers, today - dt.timedelta(days=45), api_calls=9999)  # outside the 30 days
    Tenant.objects.filter(pk=lakers.pk).update(storage_bytes=3 * 1024 * 1024)
    make_user("lakers", username="scout", staff=False)
    with schema_context("lakers"):
        StatModel.objects.create(name="pts")

    page = html(lakers_client.get("/admin/"))

    top = figures(page[page.index('id="tenant-usage"'):])
    assert top["plan"] == plan.name
    assert (top["calls_today"], top["calls_30_days"]) == ("37", "137")
    assert quota_row(page, "api_calls") == {"used": "37", "limit": f"{plan.api_calls_per_day:,}"}
    assert quota_row(page, "storage")["used"] == "3.0\xa0MB"
    assert quota_row(page, "users") == {"used": "2", "limit": f"{plan.max_users:,}"}  # the admin and the scout
    assert quota_row(page, "saved_models") == {"used": "1", "limit": f"{plan.max_models:,}"}
    chart = page[page.index('id="card-chart"'):]
    assert re.findall(r'<rect class="bar"[^>]*data-value="(\d+)"', chart) == ["100", "37"]
    assert 'class="limit"' in chart  # the plan's daily quota drawn on the chart


def test_a_quota_used_up_is_marked(lakers_free, lakers_client):
    plan = Plan.objects.get(code="FREE")
    ledger(lakers_free, utc_today(), api_calls=plan.api_calls_per_day)
    page = html(lakers_client.get("/admin/"))
    assert re.search(r'<tr data-quota="api_calls" class="over">', page)
    assert not re.search(r'<tr data-quota="saved_models" class="over">', page)


def test_one_tenants_index_never_shows_anothers_usage(lakers_free, warriors_starter, lakers_client, warriors_client):
    ledger(lakers_free, utc_today(), api_calls=4321)
    ledger(warriors_starter, utc_today(), api_calls=12)
    with schema_context("lakers"):
        StatModel.objects.create(name="lakers-points")  # the Free plan's one saved model

    warriors = html(warriors_client.get("/admin/"))
    lakers = html(lakers_client.get("/admin/"))

    assert figures(warriors[warriors.index('id="tenant-usage"'):])["calls_today"] == "12"
    assert "4321" not in warriors and "4,321" not in warriors
    assert quota_row(warriors, "saved_models")["used"] == "0"
    assert figures(warriors[warriors.index('id="tenant-usage"'):])["plan"] == Plan.objects.get(code="STARTER").name
    assert figures(lakers[lakers.index('id="tenant-usage"'):])["calls_today"] == "4321"
    assert re.search(r'<tr data-quota="saved_models" class="over">', lakers)
