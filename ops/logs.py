"""Request ids and log context: every log line says which request, tenant schema, user and task run it belongs to.

- RequestIdMiddleware (right after the probes): the request id is the client's
  X-Request-ID when it is a plain token (letters, digits, `._:-`, at most 128),
  else a new one; it is returned in the X-Request-ID header and added to every
  JSON error body as `error.request_id`, and each request ends with one
  `courtside.request` line (method, route, status, milliseconds; the path
  without its query string, which may carry a signed link or a key).
- ContextFilter puts request_id, tenant (the connection's schema), user and
  task_run_id (inside a task run, bound by django-q2's pre_execute) on every
  record, for the JSON formatter and the text one alike.
- JsonFormatter (python-json-logger): one JSON object per line; the message,
  the traceback and any `extra` field are masked like every other log line
  (core/masking.py's patterns) before they are written.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

from django.db import connection
from django.utils.functional import SimpleLazyObject, empty
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from core.masking import mask_structure, mask_text

request_logger = logging.getLogger("courtside.request")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("courtside_request_id", default=None)
_request: contextvars.ContextVar[object | None] = contextvars.ContextVar("courtside_request", default=None)
_task_run_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("courtside_task_run_id", default=None)

HEADER = "X-Request-ID"
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ERROR_BODY_LIMIT = 256 * 1024  # larger JSON answers are not error bodies


def current_request_id() -> str | None:
    return _request_id.get()


def bind_task_run(run_id: str | None):
    """Bind (or, with None, clear) the task run id of the log lines that follow in this thread."""
    return _task_run_id.set(run_id)


def _user_of(request) -> str | None:
    user = getattr(request, "user", None)
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None  # not looked up by anyone yet: a log line never costs a session query
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return str(user.get_username() if hasattr(user, "get_username") else user)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = _request_id.get()
        record.task_run_id = _task_run_id.get()
        record.tenant = getattr(connection, "schema_name", None)
        request = _request.get()
        try:
            record.user = _user_of(request) if request is not None else None
        except Exception:  # noqa: BLE001 - a log line never fails for its context
            record.user = None
        return True


class JsonFormatter(_JsonFormatter):
    """python-json-logger's formatter, with every field masked."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", False)
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(tenant)s %(user)s "
                         "%(task_run_id)s", *args, **kwargs)

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"

    def process_log_record(self, log_record):
        # Django's own records carry the request object: its repr holds the query string (a key, a signed link).
        log_record.pop("request", None)
        return {key: _masked_value(value) for key, value in mask_structure(dict(log_record)).items()}


def _masked_value(value, depth: int = 0):
    """Every string masked by pattern; anything that is not JSON is written as its masked text."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return mask_text(value)
    if depth < 10 and isinstance(value, dict):
        return {str(k): _masked_value(v, depth + 1) for k, v in value.items()}
    if depth < 10 and isinstance(value, list | tuple):
        return [_masked_value(v, depth + 1) for v in value]
    return mask_text(str(value))


def _with_request_id(response, request_id: str) -> None:
    """Add error.request_id to a JSON error body ({"error": {...}}), whoever rendered it."""
    if response.status_code < 400 or getattr(response, "streaming", False):
        return
    if not response.get("Content-Type", "").startswith("application/json"):
        return
    content = response.content
    if len(content) > _ERROR_BODY_LIMIT:
        return
    try:
        body = json.loads(content)
    except ValueError:
        return
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"]["request_id"] = request_id
        response.content = json.dumps(body).encode()
        if response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        offered = request.headers.get(HEADER, "")
        request_id = offered if _ACCEPTED.match(offered) else uuid.uuid4().hex
        request.request_id = request_id
        id_token, request_token = _request_id.set(request_id), _request.set(request)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            response[HEADER] = request_id
            _with_request_id(response, request_id)
            match = getattr(request, "resolver_match", None)
            request_logger.info(
                "%s %s %s %.1f ms", request.method, request.path, response.status_code,
                (time.perf_counter() - started) * 1000,
                extra={"method": request.method, "route": getattr(match, "route", None),
                       "status": response.status_code,
                       "duration_ms": round((time.perf_counter() - started) * 1000, 1)},
            )
            return response
        finally:
            _request_id.reset(id_token)
            _request.reset(request_token)


def task_pre_execute(sender=None, func=None, task=None, **kwargs) -> None:
    """django-q2's pre_execute: the run id of a task-layer package is on every log line of its run."""
    task = task or {}
    run_id = None
    if str(task.get("func", "")).endswith("tasks.runner.execute"):
        args, kw = task.get("args") or (), task.get("kwargs") or {}
        run_id = str(args[0]) if args else kw.get("run_id")
    _task_run_id.set(str(run_id) if run_id else None)


def task_post_execute(sender=None, **kwargs) -> None:
    _task_run_id.set(None)
