"""Bodies are bounded once for every API (issue 14.5): size, JSON depth, text; answers in the JSON error shape."""

from __future__ import annotations

import pytest
from django.conf import settings

from tests.api.openapi import documented_methods, fill_path
from tests.conftest import PUBLIC_HOST, TenantClient, make_user, tenant_host

WRITE_METHODS = ("post", "put", "patch", "delete")
# Path parameters naming real objects where one exists (the lakers), so the view gets as far as the body.
PRESENT = {"schema_name": "lakers", "id": 1, "run_id": "00000000-0000-0000-0000-000000000000",
           "key": "cache.ttl_seconds", "service_id": "bounds-1", "name": "bounds"}
DEEP_JSON = b"[" * 50_000 + b"]" * 50_000


def assert_json_error(response, status, code=None):
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "detail", "request_id"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def _client(site: str) -> TenantClient:
    schema_name = "public" if site == "operator" else "lakers"
    client = TenantClient(PUBLIC_HOST if site == "operator" else tenant_host(schema_name))
    client.raise_request_exception = False
    client.login_user(make_user(schema_name, username=f"{site}-bounds", superuser=True), schema_name)
    return client


def _write_operations(site):
    return [(method, template) for template, methods in documented_methods(site).items()
            for method in sorted(methods) if method in WRITE_METHODS]


@pytest.mark.parametrize("site", ["operator", "tenant"])
def test_json_nested_50000_deep_gets_a_400_on_every_write_endpoint(site, tenant_lakers, settings, tmp_path):
    settings.TENANT_EXPORT_DIR = tmp_path
    client = _client(site)
    answers = {}
    for method, template in _write_operations(site):
        response = client.generic(method.upper(), fill_path(template, PRESENT), DEEP_JSON,
                                  content_type="application/json")
        answers[f"{method.upper()} {template}"] = response.status_code
        assert response.status_code < 500, (method, template, response.content[:300])
        if response.status_code >= 400:
            assert_json_error(response, response.status_code)
    # The bound answers wherever a view reads its body; a few views never do (suspend) or look up first (404).
    assert list(answers.values()).count(400) >= len(answers) // 2, answers


def test_the_depth_error_names_the_limit(lakers_client):
    error = assert_json_error(lakers_client.post("/api/v1/models/", DEEP_JSON, content_type="application/json"),
                              400, "json_too_deep")
    assert str(settings.API_JSON_MAX_DEPTH) in error["message"]


def test_json_at_the_depth_limit_is_parsed(lakers_client):
    nested = "[" * (settings.API_JSON_MAX_DEPTH - 1) + "]" * (settings.API_JSON_MAX_DEPTH - 1)
    body = f'{{"key": "branding.welcome_message", "value": {nested}}}'.encode()
    response = lakers_client.post("/api/v1/config/overrides/", body, content_type="application/json")
    # Parsed: the configuration's own validation answers (the value is not a colour).
    assert_json_error(response, 400, "invalid")


def test_brackets_inside_strings_do_not_count_as_depth(lakers_client):
    name = "[" * 60 + "{" * 30
    response = lakers_client.post("/api/v1/models/", {"name": name}, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == name


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\ud83d", "\\ude00y"])
def test_a_lone_surrogate_gets_a_400(escape, lakers_client):
    body = f'{{"name": "{escape}", "target": "points"}}'.encode()
    lakers_client.raise_request_exception = False
    assert_json_error(lakers_client.post("/api/v1/models/", body, content_type="application/json"), 400,
                      "invalid_unicode")


def test_a_lone_surrogate_in_a_json_value_gets_a_400_not_a_500(lakers_client):
    lakers_client.raise_request_exception = False
    body = b'{"key": "branding.welcome_message", "value": "\\ud800"}'
    assert_json_error(lakers_client.post("/api/v1/config/overrides/", body, content_type="application/json"), 400,
                      "invalid_unicode")


def test_a_surrogate_pair_is_one_character_and_accepted(lakers_client):
    body = b'{"name": "ball \\ud83c\\udfc0"}'
    response = lakers_client.post("/api/v1/models/", body, content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "ball \N{BASKETBALL AND HOOP}"


def test_a_5_mb_body_gets_a_json_413_on_both_sites(lakers_client, operator_client):
    body = b'{"name": "' + b"x" * 5_000_000 + b'"}'
    for client, path in ((lakers_client, "/api/v1/models/"), (operator_client, "/api/v1/tenants/")):
        client.raise_request_exception = False
        error = assert_json_error(client.post(path, body, content_type="application/json"), 413,
                                  "request_too_large")
        assert str(settings.API_MAX_BODY_BYTES) in error["message"].replace(",", "")


def test_a_body_just_under_the_limit_is_read(lakers_client):
    padding = settings.API_MAX_BODY_BYTES - 100
    body = b'{"name": "big", "pad": "' + b" " * padding + b'"}'
    assert lakers_client.post("/api/v1/models/", body, content_type="application/json").status_code == 201


def test_a_5_mb_form_body_on_an_api_path_gets_json_not_html(lakers_client):
    lakers_client.raise_request_exception = False
    response = lakers_client.post("/api/v1/models/", b"name=" + b"x" * 5_000_000,
                                  content_type="application/x-www-form-urlencoded")
    assert_json_error(response, 415, "unsupported_media_type")


def test_a_body_that_is_not_json_gets_a_json_415(lakers_client):
    response = lakers_client.post("/api/v1/models/", {"name": "form"})  # multipart, the test client's default
    assert_json_error(response, 415, "unsupported_media_type")


@pytest.mark.parametrize("path", ["/api/v1/teams/", "/api/schema/", "/api/v1/no-such-thing/"])
def test_a_host_outside_allowed_hosts_gets_the_json_shape_on_api_paths(path, db):
    client = TenantClient("evil.example.com")
    client.raise_request_exception = False
    error = assert_json_error(client.get(path), 400, "disallowed_host")
    assert "evil.example.com" in error["message"]


def test_a_host_outside_allowed_hosts_still_gets_html_in_the_admin(db):
    response = TenantClient("evil.example.com").get("/admin/")
    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("escape", ["\\u0000", "a\\u0000b"])
def test_a_nul_in_a_json_string_gets_a_400(escape, lakers_client):
    lakers_client.raise_request_exception = False
    body = f'{{"key": "branding.welcome_message", "value": {{"{escape}": "{escape}"}}}}'.encode()
    assert_json_error(lakers_client.post("/api/v1/config/overrides/", body, content_type="application/json"), 400,
                      "nul_character")


def test_an_escaped_backslash_before_u0000_is_plain_text(lakers_client):
    body = b'{"name": "C:\\\\u0000 drive"}'
    response = lakers_client.post("/api/v1/models/", body, content_type="application/json")
    assert response.status_code == 201 and response.json()["name"] == "C:\\u0000 drive"


@pytest.mark.parametrize("url", ["/api/v1/schemas/status/?schema=a%00b", "/api/v1/tenants/la%00kers/",
                                 "/api/v1/config/?tenant%00=x"])
def test_a_nul_in_an_api_url_gets_a_400(url, operator_client):
    operator_client.raise_request_exception = False
    assert_json_error(operator_client.get(url), 400, "nul_character")
