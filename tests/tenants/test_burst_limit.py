"""The per-minute burst limit (api.rate_limit_per_minute), enforced in the same admission as the daily quota."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from configuration import config
from tenants import metering
from tests.conftest import TenantClient, tenant_host
from tests.tenants.conftest import away_from_a_minute_boundary, calls_today, put_on_plan


def test_past_the_burst_limit_a_call_gets_429_with_retry_after_to_the_minutes_end_and_costs_nothing(
    tenant_lakers, plan_factory, api_key_for
):
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=100))
    config.set("api.rate_limit_per_minute", 3)
    headers, _ = api_key_for(tenant_lakers)
    client = TenantClient(tenant_host("lakers"))
    away_from_a_minute_boundary()

    admitted = [client.get("/api/v1/teams/", **headers) for _ in range(3)]
    refused = client.get("/api/v1/teams/", **headers)

    assert [r.status_code for r in admitted] == [200, 200, 200]
    assert admitted[-1]["X-RateLimit-Remaining"] == "97"  # the daily figures are unchanged in meaning
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "burst_limit_exceeded"
    assert error["detail"]["limit"] == 3 and error["detail"]["window_seconds"] == 60
    seconds_left = 60 - int(time.time() % 60)
    assert abs(int(refused["Retry-After"]) - seconds_left) <= 2
    assert error["detail"]["retry_after_seconds"] == int(refused["Retry-After"])
    assert calls_today(tenant_lakers) == 3  # the refused call was not counted against the day


def test_the_burst_limit_is_per_tenant_and_zero_turns_it_off(two_tenants, plan_factory, api_key_for):
    lakers, warriors = two_tenants
    config.set("api.rate_limit_per_minute", 2)
    lakers_headers, _ = api_key_for(lakers)
    warriors_headers, _ = api_key_for(warriors)
    lakers_client, warriors_client = TenantClient(tenant_host("lakers")), TenantClient(tenant_host("warriors"))
    away_from_a_minute_boundary()

    assert [lakers_client.get("/api/v1/teams/", **lakers_headers).status_code for _ in range(3)] == [200, 200, 429]
    assert [warriors_client.get("/api/v1/teams/", **warriors_headers).status_code for _ in range(2)] == [200, 200]

    config.set("api.rate_limit_per_minute", 0)  # 0: no burst limit
    assert [lakers_client.get("/api/v1/teams/", **lakers_headers).status_code for _ in range(5)] == [200] * 5


def test_the_operator_can_give_one_tenant_its_own_burst_limit(two_tenants, api_key_for, operator_client):
    lakers, warriors = two_tenants
    response = operator_client.post("/api/v1/config/entries/",
                                    {"key": "api.rate_limit_per_minute", "value": 1, "tenant": "lakers"},
                                    content_type="application/json")
    assert response.status_code == 201
    lakers_headers, _ = api_key_for(lakers)
    warriors_headers, _ = api_key_for(warriors)
    away_from_a_minute_boundary()

    lakers_client, warriors_client = TenantClient(tenant_host("lakers")), TenantClient(tenant_host("warriors"))
    assert [lakers_client.get("/api/v1/teams/", **lakers_headers).status_code for _ in range(2)] == [200, 429]
    assert [warriors_client.get("/api/v1/teams/", **warriors_headers).status_code for _ in range(3)] == [200] * 3


@pytest.mark.django_db(transaction=True)
def test_parallel_requests_never_pass_the_burst_limit(tenant_lakers, plan_factory, api_key_for, live_tenant_url):
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=1000, max_concurrent_requests=None))
    config.set("api.rate_limit_per_minute", 10)
    _, headers = api_key_for(tenant_lakers)
    base_url, host = live_tenant_url("lakers")
    away_from_a_minute_boundary(margin=15)

    def call(_):
        with httpx.Client(base_url=base_url, timeout=60) as http:
            return http.get("/api/v1/teams/", headers={**host, **headers})

    with ThreadPoolExecutor(max_workers=30) as pool:
        responses = list(pool.map(call, range(40)))

    statuses = [r.status_code for r in responses]
    assert (statuses.count(200), statuses.count(429)) == (10, 30)
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 429} == {"burst_limit_exceeded"}
    assert calls_today(tenant_lakers) == 10


def test_the_daily_quota_wins_when_both_are_used_up(tenant_lakers, plan_factory, api_key_for):
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=2))
    config.set("api.rate_limit_per_minute", 2)
    headers, _ = api_key_for(tenant_lakers)
    client = TenantClient(tenant_host("lakers"))
    away_from_a_minute_boundary()

    responses = [client.get("/api/v1/teams/", **headers) for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 429]
    # Retrying after the minute would not help: the answer says so, with the day's Retry-After.
    assert responses[-1].json()["error"]["code"] == "daily_quota_exceeded"
    assert int(responses[-1]["Retry-After"]) == pytest.approx(metering.seconds_until_utc_midnight(), abs=5)
