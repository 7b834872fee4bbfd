"""Every documented operation of the tenant API works with each authentication it accepts.

Issue 14.2: with a tenant API key, submitting or cancelling a task answered 500
('ApiKeyPrincipal' object has no attribute 'get_username'); basic auth worked.
"""

from __future__ import annotations

import base64
import json

import pytest
from django_tenants.utils import schema_context

from tasks.models import TaskRun
from tenants import services
from tests.api.openapi import OPERATION_METHODS, documented_methods, fill_path
from tests.conftest import TenantClient, make_user, tenant_host
from tests.foundation import factories

PASSWORD = "pass-word-123"

# One valid request per documented operation of the tenant API: (path parameters, JSON body).
# `run_id` is the run the POST to tasks/runs/ made just before. A new operation must be added here.
REQUESTS = {
    ("post", "/api/v1/tasks/runs/"): ({}, {"name": "system.noop", "priority": "HIGH"}),
    ("get", "/api/v1/tasks/runs/"): ({}, None),
    ("get", "/api/v1/tasks/runs/{run_id}/"): ({}, None),
    ("post", "/api/v1/tasks/runs/{run_id}/cancel/"): ({}, None),
    ("post", "/api/v1/tasks/runs/batch/"): ({}, {"tasks": [{"key": "a", "name": "system.noop"},
                                                          {"key": "b", "name": "system.noop", "depends_on": ["a"]}]}),
    ("get", "/api/v1/tasks/catalogue/"): ({}, None),
    ("get", "/api/v1/tasks/queue/"): ({}, None),
    ("get", "/api/v1/config/"): ({}, None),
    ("get", "/api/v1/config/overrides/"): ({}, None),
    ("post", "/api/v1/config/overrides/"): ({}, {"key": "branding.welcome_message", "value": "Welcome, Lakers"}),
    ("get", "/api/v1/teams/"): ({}, None),
    ("get", "/api/v1/teams/{id}/"): ({"id": "team"}, None),
    ("get", "/api/v1/players/"): ({}, None),
    ("get", "/api/v1/players/{id}/"): ({"id": "player"}, None),
    ("get", "/api/v1/players/{id}/averages/"): ({"id": "player"}, None),
    ("get", "/api/v1/games/"): ({}, None),
    ("get", "/api/v1/games/{id}/"): ({"id": "game"}, None),
    ("get", "/api/v1/models/"): ({}, None),
    ("post", "/api/v1/models/"): ({}, {"name": "model by {auth}", "target": "points", "window_games": 5}),
}

# Refusals by design, with the error the caller gets: a key is not one of the tenant's admins.
REFUSED = {("api_key", "post", "/api/v1/config/overrides/"): (403, "permission_denied")}


def test_the_table_covers_every_documented_operation_of_the_tenant_api():
    documented = {(method, path) for path, methods in documented_methods("tenant").items()
                  for method in methods if method in OPERATION_METHODS}
    assert set(REQUESTS) == documented


@pytest.fixture
def league_rows(tenant_lakers):
    with schema_context("lakers"):
        lal, bos = factories.team("LAL"), factories.team("BOS")
        player = factories.player("LeBron James", lal)
        game = factories.game(lal, bos)
        factories.stat_line(game, player, fgm=10, fga=20)
    return {"team": lal.pk, "player": player.pk, "game": game.pk}


def _client(auth: str, tenant) -> TenantClient:
    user = make_user("lakers", username=f"{auth}-user", superuser=True, password=PASSWORD)
    if auth == "session":
        client = TenantClient(tenant_host("lakers"))
        client.login_user(user, "lakers")
    elif auth == "basic":
        token = base64.b64encode(f"{auth}-user:{PASSWORD}".encode()).decode()
        client = TenantClient(tenant_host("lakers"), HTTP_AUTHORIZATION=f"Basic {token}")
    else:
        _, raw = services.api_key_create(tenant=tenant, name="every operation", scope="write")
        client = TenantClient(tenant_host("lakers"), HTTP_AUTHORIZATION=f"Api-Key {raw}")
    client.raise_request_exception = False
    return client


@pytest.mark.parametrize("auth", ["session", "basic", "api_key"])
def test_every_tenant_operation_works_with_each_authentication(auth, tenant_lakers, league_rows):
    client = _client(auth, tenant_lakers)
    values = {"run_id": "00000000-0000-0000-0000-000000000000"}  # until the submission below succeeds
    outcomes = {}
    for (method, template), (parameters, body) in REQUESTS.items():
        path = fill_path(template, {**{name: league_rows[row] for name, row in parameters.items()}, **values})
        if isinstance(body, dict) and "name" in body:
            body = {**body, "name": body["name"].format(auth=auth)}
        response = client.generic(method.upper(), path, b"" if body is None else json.dumps(body).encode(),
                                  content_type="application/json")
        expected = REFUSED.get((auth, method, template))
        if expected:
            outcome_ok = (response.status_code, response.json()["error"]["code"]) == expected
        else:
            outcome_ok = 200 <= response.status_code < 300
        if not outcome_ok:
            outcomes[f"{method.upper()} {template}"] = (response.status_code, response.content[:200])
        if (method, template) == ("post", "/api/v1/tasks/runs/") and response.status_code == 201:
            values["run_id"] = response.json()["id"]
    assert outcomes == {}


def test_a_task_submitted_with_an_api_key_names_the_key_as_submitter(tenant_lakers):
    client = _client("api_key", tenant_lakers)
    response = client.post("/api/v1/tasks/runs/", {"name": "system.noop"}, content_type="application/json")

    assert response.status_code == 201, response.content
    run = TaskRun.objects.get(pk=response.json()["id"])
    key = tenant_lakers.api_keys.get()
    assert run.submitted_by == f"lakers:api-key:{key.prefix}"
    cancelled = client.post(f"/api/v1/tasks/runs/{run.pk}/cancel/")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
