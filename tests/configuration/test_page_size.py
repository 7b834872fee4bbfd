"""api.page_size pages both APIs, per request and per tenant view; ?page_size= is bounded by the key's schema."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from configuration import config, services
from tests.foundation import factories


@pytest.fixture
def five_teams(tenant_lakers):
    with schema_context("lakers"):
        for abbreviation in ("AAA", "BBB", "CCC", "DDD", "EEE"):
            factories.team(abbreviation)


def test_the_tenant_api_pages_by_api_page_size_read_on_each_request(lakers_client, five_teams):
    assert len(lakers_client.get("/api/v1/teams/").json()["results"]) == 5

    config.set("api.page_size", 2)
    body = lakers_client.get("/api/v1/teams/").json()

    assert (len(body["results"]), body["count"]) == (2, 5)
    assert "page=2" in body["next"]
    assert len(lakers_client.get("/api/v1/teams/?page_size=4").json()["results"]) == 4


def test_the_operator_api_pages_by_api_page_size_too(operator_client):
    for size in (7, 8, 9):
        config.set("reports.max_rows", size * 100)
    config.set("api.page_size", 2)

    body = operator_client.get("/api/v1/config/history/").json()

    assert (len(body["results"]), body["count"]) == (2, 4)
    assert len(operator_client.get("/api/v1/config/history/?page_size=3").json()["results"]) == 3


def test_a_tenant_view_can_carry_its_own_page_size(two_tenants, five_teams, operator_client, warriors_client,
                                                   lakers_client):
    with schema_context("warriors"):
        for abbreviation in ("FFF", "GGG", "HHH"):
            factories.team(abbreviation)
    response = operator_client.post("/api/v1/config/entries/",
                                    {"key": "api.page_size", "value": 1, "tenant": "lakers"},
                                    content_type="application/json")
    assert response.status_code == 201

    assert len(lakers_client.get("/api/v1/teams/").json()["results"]) == 1
    assert len(warriors_client.get("/api/v1/teams/").json()["results"]) == 3


@pytest.mark.parametrize("size", ["0", "-1", "501", "many", "1e30"])
def test_a_page_size_outside_the_schema_is_a_400_with_the_json_shape(lakers_client, five_teams, size):
    response = lakers_client.get(f"/api/v1/teams/?page_size={size}")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid" and "page_size" in error["message"]
    assert error["detail"]["page_size"]["maximum"] == 500


def test_the_bound_follows_the_schema_of_the_key(lakers_client, five_teams):
    config.set("api.page_size", 2)  # a schema is refused while today's value would break it
    services.schema_set(key="api.page_size", schema={"type": "integer", "minimum": 1, "maximum": 3})

    assert lakers_client.get("/api/v1/teams/?page_size=3").status_code == 200
    refused = lakers_client.get("/api/v1/teams/?page_size=4")
    assert refused.status_code == 400 and refused.json()["error"]["detail"]["page_size"]["maximum"] == 3
