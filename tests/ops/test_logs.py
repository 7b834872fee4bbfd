"""Request ids (in, out, in every JSON error body, on every log line) and the masked JSON formatter."""

from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from ops.logs import ContextFilter, JsonFormatter
from tests.conftest import TenantClient

TOKEN = "sk-live-91b2c3d4e5f6a7b8"


def _json_line(message, *args, **extra) -> dict:
    record = logging.getLogger("tests.ops").makeRecord("tests.ops", logging.WARNING, __file__, 1, message, args,
                                                       None, extra=extra)
    ContextFilter().filter(record)
    return json.loads(JsonFormatter().format(record))


def test_a_client_request_id_is_returned_and_put_in_error_bodies(db):
    response = Client(HTTP_HOST="nobody.localhost", HTTP_X_REQUEST_ID="lb-7f3a.42").get("/api/v1/players/")
    assert response.status_code == 404
    assert response["X-Request-ID"] == "lb-7f3a.42"
    assert response.json()["error"]["request_id"] == "lb-7f3a.42"
    assert response.json()["error"]["code"] == "unknown_host"


@pytest.mark.parametrize("offered", ["", "has spaces", "x" * 129, "<script>", "a\u00e9b"])
def test_an_unusable_request_id_is_replaced(db, offered):
    response = Client(HTTP_HOST="localhost", HTTP_X_REQUEST_ID=offered).get("/api/v1/tenants/")
    assert response.status_code in (401, 403)
    generated = response["X-Request-ID"]
    assert generated != offered and len(generated) == 32
    assert response.json()["error"]["request_id"] == generated


def test_every_json_error_carries_the_request_id(db, tenant_lakers):
    client = TenantClient("lakers.localhost", HTTP_AUTHORIZATION="Api-Key nope.nope")
    for path in ("/api/v1/players/", "/api/v1/players/?page_size=100000", "/api/v1/no-such/"):
        response = client.get(path, HTTP_X_REQUEST_ID="req-1")
        assert response.status_code >= 400
        assert response.json()["error"]["request_id"] == "req-1", (path, response.content)


def test_a_success_body_is_untouched(db, lakers_client):
    response = lakers_client.get("/api/v1/teams/", HTTP_X_REQUEST_ID="req-2")
    assert response.status_code == 200 and "request_id" not in response.json()
    assert response["X-Request-ID"] == "req-2"


def test_log_lines_carry_the_request_tenant_and_user(db, lakers_client, caplog):
    caplog.set_level(logging.INFO, logger="courtside.request")
    caplog.handler.addFilter(ContextFilter())  # as settings.LOGGING's handler has it: runs inside the request
    lakers_client.get("/api/v1/teams/", HTTP_X_REQUEST_ID="req-3")
    record = next(r for r in caplog.records if r.name == "courtside.request")
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "INFO" and line["logger"] == "courtside.request" and line["time"].endswith("Z")
    assert line["status"] == 200 and line["route"] == "api/v1/teams/"
    assert line["request_id"] == "req-3" and line["tenant"] == "lakers" and line["user"] == "lakers_admin"


def test_the_json_formatter_masks_message_arguments_extras_and_tracebacks():
    line = _json_line("calling with token=%s and %s", TOKEN, {"api_key": TOKEN},
                      api_token=TOKEN, detail={"password": TOKEN})
    assert TOKEN not in json.dumps(line)
    assert line["level"] == "WARNING" and line["logger"] == "tests.ops"
    assert {"time", "message", "request_id", "tenant", "user", "task_run_id"} <= set(line)
    try:
        raise RuntimeError(f"connect failed: postgres://app:{TOKEN}@db/x")
    except RuntimeError:
        record = logging.getLogger("tests.ops").makeRecord("tests.ops", logging.ERROR, __file__, 1, "boom", (),
                                                           __import__("sys").exc_info())
    ContextFilter().filter(record)
    assert TOKEN not in JsonFormatter().format(record)


def test_inside_a_task_run_every_line_names_the_run():
    from django_q.signals import post_execute_in_worker, pre_execute

    pre_execute.send(sender="test", func=None, task={"func": "tasks.runner.execute", "args": ("run-7f3a",)})
    try:
        assert _json_line("working")["task_run_id"] == "run-7f3a"
    finally:
        post_execute_in_worker.send(sender="test", func=None, task={})
    assert _json_line("idle")["task_run_id"] is None
    pre_execute.send(sender="test", func=None, task={"func": "some.plain.function", "args": ("x",)})
    assert _json_line("plain")["task_run_id"] is None
