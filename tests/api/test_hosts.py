"""Host names are case-insensitive (issue 14.11): Django and the heartbeat fast path route them alike."""

from __future__ import annotations

import pytest
from django.core.handlers.wsgi import WSGIHandler

from registry import tokens
from registry.fastpath import HeartbeatFastPath
from tests.conftest import TenantClient
from tests.registry.conftest import register
from tests.registry.test_fastpath import call


@pytest.mark.parametrize("host", ["LOCALHOST", "LocalHost", "localhost."])
def test_the_operator_site_answers_its_host_in_any_case(host, operator_client):
    client = TenantClient(host)
    client.cookies = operator_client.cookies
    response = client.get("/api/v1/plans/")
    assert response.status_code == 200, response.content
    assert {plan["code"] for plan in response.json()} >= {"FREE", "ENTERPRISE"}


@pytest.mark.parametrize("host", ["LAKERS.LOCALHOST", "Lakers.Localhost", "lakers.localhost."])
def test_a_tenant_site_answers_its_host_in_any_case(host, lakers_client):
    client = TenantClient(host)
    client.cookies = lakers_client.cookies
    response = client.get("/api/v1/teams/")
    assert response.status_code == 200, response.content
    assert response["X-RateLimit-Limit"]  # metered as the Lakers' own call


@pytest.mark.parametrize("host", ["LOCALHOST", "localhost.", "LocalHost:8000"])
def test_a_heartbeat_gets_the_same_answer_with_and_without_the_fast_path(host, public_tenant):
    token = tokens.token_create(service_name="stats-api")[1]
    register("stats-1")
    path = "/api/v1/services/heartbeat/stats-1"
    fast = call(HeartbeatFastPath(WSGIHandler()), "PUT", path, host=host, token=token)
    django_only = call(WSGIHandler(), "PUT", path, host=host, token=token)
    assert fast == django_only == (200, {"service_id": "stats-1", "status": "passing"})
