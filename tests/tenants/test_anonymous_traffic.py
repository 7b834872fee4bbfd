"""Anonymous traffic on a tenant host (the OpenAPI schema, the docs page) never spends the tenant's quota.

Only authenticated tenant API calls are metered against the tenant; anonymous
requests are limited per client address (and per host), atomically in
PostgreSQL, and answered 429 with the JSON error shape past the limit.
Everything goes over real HTTP to the live server.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from configuration import config
from tenants.models import RequestLease, UsageDay
from tests.tenants.conftest import away_from_a_minute_boundary, calls_today, put_on_plan

live_http = pytest.mark.django_db(transaction=True)

ANONYMOUS_PATHS = ("/api/schema/", "/api/docs/")


@live_http
def test_twelve_anonymous_requests_leave_a_tenant_with_nine_calls_its_nine_calls(
    tenant_lakers, plan_factory, api_key_for, live_tenant_url
):
    # The issue's own story: nine calls left, twelve anonymous requests, and the key must still work.
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=10, max_concurrent_requests=1))
    _, auth = api_key_for(tenant_lakers)
    base_url, host = live_tenant_url("lakers")
    with httpx.Client(base_url=base_url, headers=host, timeout=60) as http:
        first = http.get("/api/v1/teams/", headers=auth)
        assert (first.status_code, first.headers["X-RateLimit-Remaining"]) == (200, "9")

        anonymous = [http.get(path) for path in ANONYMOUS_PATHS * 6]

        after = http.get("/api/v1/teams/", headers=auth)
    assert [r.status_code for r in anonymous] == [200] * 12
    assert (after.status_code, after.headers["X-RateLimit-Remaining"]) == (200, "8")
    assert calls_today(tenant_lakers) == 2


@live_http
def test_anonymous_requests_in_parallel_take_no_concurrency_lease_of_the_tenant(
    tenant_lakers, plan_factory, api_key_for, live_tenant_url
):
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=5, max_concurrent_requests=1))
    base_url, host = live_tenant_url("lakers")

    def call(index):
        with httpx.Client(base_url=base_url, headers=host, timeout=60) as http:
            return http.get(ANONYMOUS_PATHS[index % 2])

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(call, range(8)))

    assert [r.status_code for r in responses] == [200] * 8  # none refused for the tenant's concurrency
    assert calls_today(tenant_lakers) == 0
    assert UsageDay.objects.filter(tenant=tenant_lakers, peak_concurrency__gt=0).count() == 0
    assert RequestLease.objects.count() == 0


@live_http
def test_the_per_address_limit_admits_exactly_the_limit_under_parallel_requests_with_a_json_429(
    two_tenants, plan_factory, api_key_for, live_tenant_url
):
    lakers, warriors = two_tenants
    put_on_plan(lakers, plan_factory(api_calls_per_day=3))
    config.set("anonymous.rate_limit_per_minute", 5)
    _, auth = api_key_for(lakers)
    base_url, host = live_tenant_url("lakers")
    away_from_a_minute_boundary()

    def call(_):
        with httpx.Client(base_url=base_url, headers=host, timeout=60) as http:
            return http.get("/api/docs/")

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(call, range(20)))

    statuses = [r.status_code for r in responses]
    assert (statuses.count(200), statuses.count(429)) == (5, 15)
    refused = next(r for r in responses if r.status_code == 429)
    body = refused.json()
    assert body["error"]["code"] == "anonymous_rate_limit_exceeded"
    assert body["error"]["detail"]["limit"] == 5
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Content-Type"].startswith("application/json")

    with httpx.Client(base_url=base_url, timeout=60) as http:
        # The tenant's own key still has every call; another tenant's host has its own address window.
        keyed = http.get("/api/v1/teams/", headers={**host, **auth})
        elsewhere = http.get("/api/docs/", headers=live_tenant_url("warriors")[1])
    assert (keyed.status_code, keyed.headers["X-RateLimit-Remaining"]) == (200, "2")
    assert elsewhere.status_code == 200
    assert calls_today(lakers) == 1 and calls_today(warriors) == 0


@pytest.mark.parametrize(("address", "bucket"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),  # one subscriber's prefix is one client
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("", "unknown"),
    ("not an address", "unknown"),
])
def test_an_anonymous_client_is_its_ipv4_address_or_its_ipv6_slash_64(address, bucket):
    from tenants.metering import client_address_bucket

    assert client_address_bucket(address) == bucket
