"""Responses match their OpenAPI documents (issue 14.11): nulls where fields may be empty, objects where
the view answers an object, every 4xx in the JSON error shape. Real HTTP to a live server; rows seeded."""

from __future__ import annotations

import base64

import pytest
import requests
import schemathesis

from configuration.models import ConfigChange
from tests.api.openapi import openapi_document
from tests.conftest import make_user, tenant_host

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "pass-word-123"


def _basic(username: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()}


@pytest.fixture
def call(live_server, tenant_lakers, api_rows):
    """call(site, method, template, path) -> the response, validated against the site's document."""
    make_user("public", username="doc-operator", superuser=True, password=PASSWORD)
    make_user("lakers", username="doc-coach", superuser=True, password=PASSWORD)
    port = live_server.url.rsplit(":", 1)[1]
    documents = {site: schemathesis.openapi.from_dict(openapi_document(site)) for site in ("operator", "tenant")}

    def do(site, method, template, path, headers=None, **kwargs):
        headers = {**(_basic("doc-operator") if site == "operator" else {
            **_basic("doc-coach"), "Host": f"{tenant_host('lakers')}:{port}"}), **(headers or {})}
        response = requests.request(method, f"http://127.0.0.1:{port}{path}", headers=headers, timeout=30, **kwargs)
        documents[site][template][method].validate_response(response)
        return response

    return do


def test_a_plan_change_from_no_plan_is_documented_as_nullable(call):
    changes = call("operator", "GET", "/api/v1/tenants/{schema_name}/plan/", "/api/v1/tenants/lakers/plan/").json()
    assert None in [change["from_plan"] for change in changes]


def test_an_empty_support_email_is_documented(call):
    tenant = call("operator", "GET", "/api/v1/tenants/{schema_name}/", "/api/v1/tenants/lakers/").json()
    assert tenant["support_email"] == ""
    call("operator", "GET", "/api/v1/tenants/", "/api/v1/tenants/")


def test_operator_layer_entries_and_changes_have_a_null_tenant(call):
    entries = call("operator", "GET", "/api/v1/config/entries/", "/api/v1/config/entries/").json()["results"]
    changes = call("operator", "GET", "/api/v1/config/history/", "/api/v1/config/history/").json()["results"]
    assert None in [entry["tenant"] for entry in entries] and None in [change["tenant"] for change in changes]


def test_a_rollback_that_removes_the_entry_is_documented(call):
    removal = ConfigChange.objects.filter(key="cache.ttl_seconds", exists_after=False).get()
    path = f"/api/v1/config/history/{removal.pk}/rollback/"
    answer = call("operator", "POST", "/api/v1/config/history/{id}/rollback/", path).json()
    assert answer == {"deleted": True}
    first = ConfigChange.objects.filter(key="cache.ttl_seconds", exists_after=True).earliest("id")
    restored = call("operator", "POST", "/api/v1/config/history/{id}/rollback/",
                    f"/api/v1/config/history/{first.pk}/rollback/").json()
    assert restored["value"] == 30


def test_a_player_without_a_team_is_documented(call):
    players = call("tenant", "GET", "/api/v1/players/", "/api/v1/players/").json()["results"]
    assert None in [player["team"] for player in players]


def test_a_players_averages_are_the_documented_object(call, api_rows):
    path = f"/api/v1/players/{api_rows['player']}/averages/"
    averages = call("tenant", "GET", "/api/v1/players/{id}/averages/", path).json()
    assert averages["player"] == "LeBron James" and averages["seasons"][0]["games"] == 1


def test_every_4xx_is_documented_with_the_error_shape(call):
    answers = [
        call("tenant", "GET", "/api/v1/players/{id}/", "/api/v1/players/999999/"),
        call("tenant", "GET", "/api/v1/players/", "/api/v1/players/?team=abc"),
        call("tenant", "POST", "/api/v1/models/", "/api/v1/models/", data=b"[" * 50_000,
             headers={"Content-Type": "application/json"}),
        call("tenant", "POST", "/api/v1/models/", "/api/v1/models/", data=b"name=x",
             headers={"Content-Type": "application/x-www-form-urlencoded"}),
        call("operator", "POST", "/api/v1/tenants/", "/api/v1/tenants/", json={"name": ""}),
        call("operator", "GET", "/api/v1/tenants/{schema_name}/", "/api/v1/tenants/lakers/",
             headers={"Authorization": "Basic bm9ib2R5Om5vcGU="}),
    ]
    assert [answer.status_code for answer in answers] == [404, 400, 400, 415, 400, 401]
