"""Issue 14.5: every malformed input to the registry is a 4xx with the JSON error shape, never a 500, and no
value is coerced silently (a list is not a host, 80.5 is not a port, an empty body is not "enable")."""

import json
import time
from io import StringIO
from urllib.parse import quote

import pytest
from django.core.management import CommandError, call_command

from registry.models import RegistryEvent, ServiceInstance, ServiceToken
from tests.registry.conftest import register
from tests.registry.test_api import REGISTRATION, assert_error, post_json


def expected_code(sent: str) -> str:
    """A NUL byte (JSON \\u0000, URL %00) is refused by the API's edge before the registry sees it."""
    return "nul_character" if "\\u0000" in sent or "%00" in sent else "invalid"


def put_raw(client, path, body: str):
    return client.put(path, data=body, content_type="application/json")


@pytest.mark.parametrize(
    "change",
    [
        {"service_id": "stats\x00-1"}, {"host": "10.0.0.5\x00"}, {"name": "stats\x00api"},
        {"host": "0.0.0.0"}, {"host": "::"}, {"host": "my host"}, {"service_id": "x" * 129},
        {"host": ["x"]}, {"host": 5}, {"host": {"a": 1}},
        {"service_id": 17}, {"service_id": ["stats-1"]},
        {"name": 5}, {"name": ["stats-api"]}, {"name": {"n": 1}},
        {"port": 80.5}, {"port": "8080"}, {"port": True}, {"port": [8080]},
        {"weight": 2.5}, {"weight": "3"}, {"weight": False},
        {"tags": "api,production"}, {"tags": [1, 2]}, {"tags": ["api\x00"]}, {"tags": [["api"]]},
        {"metadata": ["x"]}, {"metadata": "x"}, {"metadata": {"k\x00": "v"}}, {"metadata": {"k": "v\x00"}},
        {"metadata": {"k": {"deep": ["v\x00"]}}},
        {"checks": {"type": "ttl"}}, {"checks": ["ttl"]}, {"checks": [{"type": "ttl", "ttl": []}]},
        {"checks": [{"type": "ttl", "ttl": True}]}, {"checks": [{"type": "ttl", "name": 5}]},
        {"checks": [{"type": ["ttl"]}]}, {"checks": [{"type": "http", "url": "http://x.test/\x00"}]},
        {"checks": [{"type": "tcp", "tcp": "10.0.0.5:80", "timeout": "1s", "tcp_port": "80"}]},
        {"checks": [{"type": "ttl", "failures_before_critical": 2.5}]},
        {"unknown_field": 1},
    ],
)
def test_malformed_registrations_are_a_400_and_write_nothing(service_client, change):
    response = post_json(service_client("stats-api"), "/api/v1/services/register", {**REGISTRATION, **change})

    # A NUL byte anywhere in a JSON body is refused by the API's parser before the registry sees it.
    assert_error(response, 400, expected_code(json.dumps(change)))
    assert not ServiceInstance.objects.exists() and not RegistryEvent.objects.exists()


def test_a_port_of_1e309_is_a_400(service_client):
    body = json.dumps(REGISTRATION).replace('"port": 8080', '"port": 1e309')
    response = service_client("stats-api").post("/api/v1/services/register", data=body,
                                                content_type="application/json")
    assert_error(response, 400, "invalid")
    assert not ServiceInstance.objects.exists()


@pytest.mark.parametrize("body", ['{"service_name": 5}', '{"service_name": ["stats-api"]}',
                                  '{"service_name": {"n": "stats-api"}}', '{"service_name": "stats\\u0000api"}',
                                  '{"service_name": "stats-api", "rotate": "false"}', "[]", "null", '"x"'])
def test_malformed_token_requests_are_a_400(operator_client, body):
    response = operator_client.post("/api/v1/services/tokens", data=body, content_type="application/json")
    assert_error(response, 400, expected_code(body))
    assert not ServiceToken.objects.exists()


@pytest.mark.parametrize("body", ["[]", "null", '"x"', "", "{}", '{"enable": "yes"}', '{"enable": 1}',
                                  '{"enable": true, "reason": ["x"]}', '{"enable": true, "reason": "x\\u0000"}'])
def test_a_maintenance_request_must_say_enable_true_or_false(operator_client, body):
    register("a", checks=[])

    response = put_raw(operator_client, "/api/v1/services/maintenance/a", body)

    assert_error(response, 400, expected_code(body))
    instance = ServiceInstance.objects.get()
    assert (instance.maintenance, instance.status) == (False, "passing")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/services/heartbeat/{}"), ("post", "/api/v1/services/heartbeat/{}"),
        ("delete", "/api/v1/services/deregister/{}"), ("put", "/api/v1/services/maintenance/{}"),
        ("get", "/api/v1/services/{}/instances"), ("get", "/api/v1/services/{}/next"),
    ],
)
def test_a_nul_byte_in_a_path_is_a_4xx(operator_client, method, path):
    register("a", checks=[])
    kwargs = {"data": json.dumps({"enable": True}), "content_type": "application/json"} if "maintenance" in path \
        else {}

    response = getattr(operator_client, method)(path.format(quote("a\x00b")), **kwargs)

    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)
    assert ServiceInstance.objects.get().maintenance is False


@pytest.mark.parametrize("query", ["index={index}&status=", "index={index}&status=sleepy", "index={index}&tag=api%00",
                                   "index=-1", "index=99999999999999999999999", "index={index}&wait=forever",
                                   "index={index}&wait=1e309s"])
def test_a_blocking_query_with_bad_parameters_is_refused_before_it_waits(operator_client, query):
    register("a", checks=[])
    index = operator_client.get("/api/v1/services/stats-api/instances")["X-Registry-Index"]
    query = query.format(index=index)  # the current index: a valid query would wait for the next change
    started = time.monotonic()

    response = operator_client.get(f"/api/v1/services/stats-api/instances?{query}&wait=20s"
                                   if "wait=" not in query else f"/api/v1/services/stats-api/instances?{query}")

    assert_error(response, 400, expected_code(query))
    assert time.monotonic() - started < 10  # refused at once, not after the 20 s wait (old code: after it)


def test_the_register_command_refuses_a_nul_byte_and_bad_metadata(db):
    for args in (["--host", "10.0.0.1\x00"], ["--host", "10.0.0.1", "--meta", '{"a": NaN}'],
                 ["--host", "10.0.0.1", "--meta", '{"a": "\\u0000"}'], ["--host", "10.0.0.1", "--meta", "[1]"],
                 ["--host", "10.0.0.1", "--tag", "api\x00"]):
        with pytest.raises(CommandError):
            call_command("service_register", "stats-api", "--id", "stats-1", "--port", "8080", *args,
                         stdout=StringIO())
    assert not ServiceInstance.objects.exists()


@pytest.mark.parametrize("name", ["stats\x00api", "Stats API", "x" * 64, ""])
def test_the_token_command_refuses_names_the_registry_cannot_hold(db, name):
    with pytest.raises(CommandError):
        call_command("service_token", name, stdout=StringIO())
    assert not ServiceToken.objects.exists()


@pytest.mark.parametrize(("field", "value"), [("host", "10.0.0.9\x00"), ("service_id", "stats\x009"),
                                              ("metadata", '{"k": "v\\u0000"}'), ("metadata", '["x"]'),
                                              ("metadata", '{"k\\u0000": 1}'), ("tags", "api,\x00")])
def test_the_admin_form_refuses_what_the_api_refuses(operator_client, field, value):
    data = {"service_id": "stats-9", "name": "stats-api", "host": "10.0.0.9", "port": "8081", "tags": "api",
            "metadata": "{}", "weight": "1", field: value}

    response = operator_client.post("/admin/services/serviceinstance/add/", data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not ServiceInstance.objects.exists()


def test_the_token_admin_form_refuses_a_nul_byte(operator_client):
    response = operator_client.post("/admin/services/servicetoken/add/", {"service_name": "stats\x00api"})
    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert not ServiceToken.objects.exists()


def test_tenant_hosts_never_reach_the_registry_s_validation(lakers_client, warriors_client, service_client):
    """A tenant host answers 404 for every registry path, bad input or not: no 400 tells it the registry's rules."""
    token = service_client("stats-api").defaults["HTTP_AUTHORIZATION"]
    for client in (lakers_client, warriors_client):
        client.defaults["HTTP_AUTHORIZATION"] = token
        assert post_json(client, "/api/v1/services/register", {**REGISTRATION, "port": 80.5}).status_code == 404
        assert put_raw(client, "/api/v1/services/maintenance/a", "[]").status_code == 404
        assert client.get("/api/v1/services/stats-api/instances?index=0&status=").status_code == 404
    assert not ServiceInstance.objects.exists()
