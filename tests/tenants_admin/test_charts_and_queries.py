"""The SVG charts as markup, and the operator's tenant list staying at a fixed number of queries."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext

from core import charts
from tenants.models import Plan, Tenant

from .conftest import ledger, utc_today


def test_a_bar_chart_has_one_bar_per_known_value_and_escapes_its_text():
    svg = charts.bar_chart([("<b>Mon</b>", 3), ("Tue", None), ("Wed", 0), ("Thu", 7)], title='Calls "&" <more>')

    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('<rect class="bar"') == 3  # Tue has no ledger row: no bar, not a zero
    assert "<b>" not in svg and "&lt;b&gt;Mon&lt;/b&gt;" in svg
    assert "&quot;&amp;&quot; &lt;more&gt;" in svg
    assert 'class="limit"' not in svg


def test_a_bar_at_the_quota_is_red_and_the_quota_is_drawn():
    svg = charts.bar_chart([("a", 50), ("b", 100)], title="calls", limit=100, color="#552583")
    bars = svg.split('<rect class="bar"')[1:]
    assert 'fill="#552583"' in bars[0] and f'fill="{charts.OVER_COLOR}"' in bars[1]
    assert 'class="limit"' in svg


def test_a_meter_is_empty_for_an_unlimited_quota_and_capped_when_over():
    assert charts.meter(5, None) == ""
    full = charts.meter(150, 100, width=80)
    assert 'class="meter-fill" width="80"' in full and "150% of quota" in full


def test_the_tenant_list_does_not_query_per_tenant(operator_client, lakers_free):
    def list_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert operator_client.get("/admin/tenants/tenant/").status_code == 200
        return len(captured)

    few = list_queries()
    # Rows only: the list never opens a tenant's schema, so these need none.
    starter = Plan.objects.get(code="STARTER")
    extra = Tenant.objects.bulk_create(
        [Tenant(name=f"Club {i}", schema_name=f"club_{i}", plan=starter) for i in range(20)]
    )
    for tenant in extra:
        ledger(tenant, utc_today(), api_calls=10)

    assert list_queries() == few
