"""The usage ledger records the surface of each admitted call: a REST call and MCP tools/calls against a live
mcp_serve land on one row of the tenant's day, `mcp_calls` of its `api_calls`, and the statement splits them."""

from __future__ import annotations

import datetime as dt

import anyio
import pytest
from django.utils import timezone

from tests.conftest import PUBLIC_HOST, TenantClient, make_user, tenant_host
from tests.nba_mcp.conftest import host, mcp_session

pytestmark = pytest.mark.django_db(transaction=True)


async def _mcp_calls(url: str, schema: str, key: str, count: int):
    async with mcp_session(url, host=host(schema), key=key) as session:
        return [await session.call_tool("list_teams", {}) for _ in range(count)]


def test_rest_and_mcp_calls_are_counted_by_surface_on_the_one_ledger(mcp_server, leagues):
    from nba_mcp import selectors
    from tenants import statements
    from tenants.models import Plan, Tenant, UsageDay

    professional = Plan.objects.get(code="PROFESSIONAL")
    Tenant.objects.exclude(schema_name="public").update(plan=professional)
    lakers, warriors = Tenant.objects.get(schema_name="lakers"), Tenant.objects.get(schema_name="warriors")
    (_, lakers_key), (_, warriors_key) = leagues["lakers"], leagues["warriors"]
    today = timezone.now().astimezone(dt.UTC).date()

    rest = TenantClient(tenant_host("lakers"), HTTP_AUTHORIZATION=f"Api-Key {lakers_key}")
    assert rest.get("/api/v1/teams/").status_code == 200
    assert [r.is_error for r in anyio.run(_mcp_calls, mcp_server.url, "lakers", lakers_key, 2)] == [False, False]
    assert [r.is_error for r in anyio.run(_mcp_calls, mcp_server.url, "warriors", warriors_key, 1)] == [False]

    day = UsageDay.objects.get(tenant=lakers, date=today)
    assert (day.api_calls, day.mcp_calls, day.rest_calls) == (3, 2, 1)
    other = UsageDay.objects.get(tenant=warriors, date=today)
    assert (other.api_calls, other.mcp_calls) == (1, 1)  # the Warriors' call is theirs alone
    assert selectors.usage_by_surface(tenant=lakers) == {"date": today.isoformat(), "api_calls": 3, "mcp": 2,
                                                         "rest": 1}
    statement = statements.tenant_statement(tenant=lakers, month=today.strftime("%Y-%m"))
    assert statement.calls_by_surface == {"rest": 1, "mcp": 2}

    operator = TenantClient(PUBLIC_HOST)
    operator.login_user(make_user("public", username="surface_operator", superuser=True), "public")
    html = operator.get(f"/admin/tenants/tenant/{lakers.pk}/statement/").content.decode()
    assert 'id="calls-rest">1<' in html and 'id="calls-mcp">2<' in html
    body = operator.get(f"/api/v1/tenants/lakers/statements/{today:%Y-%m}/").json()
    assert body["calls"] == {"total": 3, "rest": 1, "mcp": 2, "refused": 0}


def test_an_unknown_surface_is_refused_before_anything_is_counted(leagues):
    from tenants import metering
    from tenants.models import Tenant, UsageDay

    lakers = Tenant.objects.get(schema_name="lakers")
    with pytest.raises(ValueError, match="surface"):
        metering.admit(tenant=lakers, authenticated=True, surface="grpc")
    assert not UsageDay.objects.filter(tenant=lakers, api_calls__gt=0).exists()
