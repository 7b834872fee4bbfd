"""API calls per UTC day and concurrent requests, counted and enforced in PostgreSQL."""

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from django.utils import timezone

from tenants import metering
from tenants.models import RequestLease, UsageDay
from tests.conftest import TenantClient, tenant_host
from tests.tenants.conftest import free_connections, put_on_plan


@pytest.mark.django_db(transaction=True)
def test_200_concurrent_requests_with_100_calls_left_give_exactly_100_successes(
    tenant_lakers, plan_factory, api_key_for, live_tenant_url
):
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=100))
    _, headers = api_key_for(tenant_lakers)
    base_url, host = live_tenant_url("lakers")
    # Each in-flight request holds a server connection; stay under the server's limit
    # (200 on the embedded server, fewer on a stock max_connections=100 server).
    parallel = max(20, min(200, free_connections() - 15))

    def call(_):
        with httpx.Client(base_url=base_url, timeout=60) as http:
            return http.get("/api/v1/teams/", headers={**host, **headers})

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        responses = list(pool.map(call, range(200)))

    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 100
    assert statuses.count(429) == 100
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "daily_quota_exceeded"
    assert 0 < int(refused.headers["Retry-After"]) <= 86400
    assert UsageDay.objects.get(tenant=tenant_lakers, date=timezone.now().astimezone(dt.UTC).date()).api_calls == 100


def test_every_api_response_carries_rate_limit_headers(tenant_lakers, plan_factory, api_key_for):
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=2))
    headers, _ = api_key_for(tenant_lakers)
    client = TenantClient(tenant_host("lakers"))

    first = client.get("/api/v1/teams/", **headers)
    second = client.get("/api/v1/teams/", **headers)
    third = client.get("/api/v1/teams/", **headers)
    anonymous = client.get("/api/v1/teams/")

    assert (first.status_code, first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"]) == (200, "2", "1")
    assert (second.status_code, second["X-RateLimit-Remaining"]) == (200, "0")
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "daily_quota_exceeded"
    assert third["X-RateLimit-Remaining"] == "0"
    assert int(third["Retry-After"]) == pytest.approx(metering.seconds_until_utc_midnight(), abs=5)
    assert anonymous.status_code == 401 and anonymous["X-RateLimit-Remaining"] == "0"


def test_unlimited_plans_say_so_in_the_headers(tenant_lakers, plan_factory, api_key_for):
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=None))
    headers, _ = api_key_for(tenant_lakers)

    response = TenantClient(tenant_host("lakers")).get("/api/v1/teams/", **headers)

    assert response["X-RateLimit-Limit"] == "unlimited"


def test_calls_are_metered_per_tenant(two_tenants, plan_factory, api_key_for):
    lakers, warriors = two_tenants
    put_on_plan(lakers, plan_factory(api_calls_per_day=1))
    lakers_headers, _ = api_key_for(lakers)
    warriors_headers, _ = api_key_for(warriors)

    assert TenantClient(tenant_host("lakers")).get("/api/v1/teams/", **lakers_headers).status_code == 200
    assert TenantClient(tenant_host("lakers")).get("/api/v1/teams/", **lakers_headers).status_code == 429
    assert TenantClient(tenant_host("warriors")).get("/api/v1/teams/", **warriors_headers).status_code == 200
    assert UsageDay.objects.get(tenant=warriors).api_calls == 1


def test_a_plan_change_applies_on_the_next_request(tenant_lakers, plan_factory, api_key_for, operator_client):
    put_on_plan(tenant_lakers, plan_factory(code="TINY", api_calls_per_day=1))
    headers, _ = api_key_for(tenant_lakers)
    client = TenantClient(tenant_host("lakers"))
    assert client.get("/api/v1/teams/", **headers).status_code == 200
    assert client.get("/api/v1/teams/", **headers).status_code == 429

    response = operator_client.post("/api/v1/tenants/lakers/plan/", {"plan": "STARTER"},
                                    content_type="application/json")

    assert response.status_code == 200 and response.json()["plan"] == "STARTER"
    after = client.get("/api/v1/teams/", **headers)
    assert after.status_code == 200 and after["X-RateLimit-Limit"] == "10000"
    history = operator_client.get("/api/v1/tenants/lakers/plan/").json()
    assert [(h["from_plan"], h["to_plan"]) for h in history][0] == ("TINY", "STARTER")


@pytest.mark.django_db(transaction=True)
def test_the_concurrency_limit_holds_under_parallel_slow_requests(
    tenant_lakers, plan_factory, api_key_for, live_tenant_url, settings
):
    settings.ROOT_URLCONF = "tests.tenants.slow_urls"
    put_on_plan(tenant_lakers, plan_factory(max_concurrent_requests=2))
    _, headers = api_key_for(tenant_lakers)
    base_url, host = live_tenant_url("lakers")

    def call(_):
        with httpx.Client(base_url=base_url, timeout=30) as http:
            return http.get("/slow/?seconds=1.5", headers={**host, **headers})

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(call, range(6)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 429, 429, 429, 429]
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.json()["error"]["code"] == "concurrency_limit_exceeded"
    assert RequestLease.objects.count() == 0  # every finished request gave its lease back
    assert UsageDay.objects.get(tenant=tenant_lakers).peak_concurrency == 2


def test_a_lease_left_by_a_killed_request_expires(tenant_lakers, plan_factory, api_key_for, settings):
    settings.TENANT_REQUEST_LEASE_SECONDS = 1
    put_on_plan(tenant_lakers, plan_factory(max_concurrent_requests=1))
    headers, _ = api_key_for(tenant_lakers)
    # A request admitted and then killed before it could release its lease.
    metering.request_admit(tenant=tenant_lakers)
    client = TenantClient(tenant_host("lakers"))

    blocked = client.get("/api/v1/teams/", **headers)
    time.sleep(1.2)
    after_expiry = client.get("/api/v1/teams/", **headers)

    assert blocked.status_code == 429
    assert after_expiry.status_code == 200
