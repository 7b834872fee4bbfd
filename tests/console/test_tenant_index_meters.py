"""The tenant index's quota meters wear the tenant's brand colour (one palette), red only when nearly used up."""

from __future__ import annotations

import re

import pytest

from tenants.models import Plan, Tenant
from tests.tenants_admin.conftest import ledger, put_on_plan, utc_today

pytestmark = pytest.mark.django_db

LAKERS_PURPLE, WARRIORS_BLUE = "#552583", "#1d428a"
ERROR_RED = "#ba2121"


def meter_fill(page: str, quota: str) -> str:
    row = re.search(rf'<tr data-quota="{quota}"[^>]*>(.*?)</tr>', page, re.S)
    assert row, quota
    fill = re.search(r'class="meter-fill"[^>]*fill="(#[0-9a-fA-F]{6})"', row.group(1))
    assert fill, row.group(1)
    return fill.group(1).lower()


def test_the_meters_are_in_the_brand_colour_and_red_when_nearly_used_up(tenant_lakers, tenant_warriors,
                                                                       lakers_client, warriors_client):
    for tenant, colour in ((tenant_lakers, LAKERS_PURPLE), (tenant_warriors, "#006bb6")):
        put_on_plan(tenant, "STARTER")
        Tenant.objects.filter(pk=tenant.pk).update(primary_color=colour)
    limit = Plan.objects.get(code="STARTER").api_calls_per_day
    ledger(tenant_lakers, utc_today(), api_calls=1)
    ledger(tenant_warriors, utc_today(), api_calls=limit)  # used up: the warning colour, whatever the brand

    lakers = lakers_client.get("/admin/").content.decode()
    warriors = warriors_client.get("/admin/").content.decode()

    assert meter_fill(lakers, "api_calls") == meter_fill(lakers, "users") == LAKERS_PURPLE
    assert meter_fill(warriors, "users") == "#006bb6"  # each tenant its own colour, never the other's
    assert meter_fill(warriors, "api_calls") == ERROR_RED
    assert LAKERS_PURPLE not in warriors.lower()
