"""The operator's plan list shows each plan's overage price per 1,000 calls in money, or that the plan blocks."""

from __future__ import annotations

import re

import pytest

from tenants.models import Plan

pytestmark = pytest.mark.django_db


def overage_cells(page: str) -> dict[str, str]:
    rows = re.findall(r'<tr>.*?<a href="[^"]*/(\d+)/change/">.*?</a>.*?<td class="field-overage_display">(.*?)</td>',
                      page, re.S)
    names = {str(plan.pk): plan.code for plan in Plan.objects.all()}
    return {names[pk]: cell for pk, cell in rows}


def test_the_plan_list_has_an_overage_column_in_money_or_blocks(operator_client):
    Plan.objects.filter(code="PROFESSIONAL").update(overage_price_cents_per_1000=50)
    Plan.objects.filter(code="ENTERPRISE").update(overage_price_cents_per_1000=123_456)
    Plan.objects.filter(code__in=["FREE", "STARTER"]).update(overage_price_cents_per_1000=None)

    page = operator_client.get("/admin/tenants/plan/").content.decode()

    assert "overage" in page.lower()
    cells = overage_cells(page)
    assert cells["PROFESSIONAL"] == "$0.50 / 1,000 calls"
    assert cells["ENTERPRISE"] == "$1,234.56 / 1,000 calls"
    assert cells["FREE"] == cells["STARTER"] == "blocks"
