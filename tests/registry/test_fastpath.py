"""The WSGI fast path for heartbeats: same answers as the API view, only on the operator host."""

import json

import pytest
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.db import close_old_connections, connection
from django.test import RequestFactory

from registry import registration
from registry.fastpath import HeartbeatFastPath
from registry.models import ServiceInstance
from tests.registry.conftest import register


@pytest.fixture
def app(public_tenant):
    return HeartbeatFastPath(WSGIHandler())


def call(app, method: str, path: str, *, host: str = "localhost", token: str | None = None):
    """A real WSGI call through the wrapper (and Django behind it)."""
    headers = {"HTTP_HOST": host}
    if token:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    environ = RequestFactory().generic(method, path, **headers).environ
    captured = {}

    def start_response(status, response_headers, exc_info=None):
        captured["status"], captured["headers"] = int(status.split()[0]), dict(response_headers)

    # As Django's test client does: the test's connection (and its transaction) must survive the request.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        result = app(environ, start_response)
        body = b"".join(result)
        getattr(result, "close", lambda: None)()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
        connection.set_schema_to_public()  # Django's tenant middleware leaves the connection where it went
    return captured["status"], json.loads(body) if body else None


@pytest.fixture
def token(make_token):
    return make_token("stats-api")


def test_a_heartbeat_through_the_fast_path_passes_the_ttl_check(app, token):
    register("stats-1")
    assert call(app, "PUT", "/api/v1/services/heartbeat/stats-1", token=token) == \
        (200, {"service_id": "stats-1", "status": "passing"})
    assert ServiceInstance.objects.get().last_heartbeat is not None


def test_the_fast_path_refuses_like_the_api(app, token, make_token):
    register("stats-1")
    billing = make_token("billing")

    status, body = call(app, "PUT", "/api/v1/services/heartbeat/stats-1", token="cs_svc_nope")
    assert (status, body["error"]["code"]) == (401, "authentication_failed")
    status, body = call(app, "POST", "/api/v1/services/heartbeat/stats-1", token=billing)
    assert (status, body["error"]["code"]) == (400, "service_id_taken")
    status, body = call(app, "PUT", "/api/v1/services/heartbeat/ghost", token=token)
    assert (status, body["error"]["code"]) == (404, "not_found")
    assert ServiceInstance.objects.get().last_heartbeat is None


def test_tenant_hosts_and_other_requests_go_to_django_untouched(app, token, tenant_lakers):
    register("stats-1")

    status, body = call(app, "PUT", "/api/v1/services/heartbeat/stats-1", host="lakers.localhost", token=token)
    assert (status, body["error"]["code"]) == (404, "not_found")  # the tenant site has no registry
    assert ServiceInstance.objects.get().last_heartbeat is None

    status, body = call(app, "GET", "/api/v1/services/heartbeat/stats-1", token=token)
    assert status == 405  # Django's API view answered
    registration.service_heartbeat(service_id="stats-1")
    status, body = call(app, "GET", "/api/v1/services/stats-api/instances", token=token)
    assert status == 200 and body["results"][0]["status"] == "passing"
