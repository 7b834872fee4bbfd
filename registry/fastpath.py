"""A WSGI fast path for heartbeats: the registry's hottest call skips Django's request stack.

Heartbeats are the bulk of a registry's traffic (every instance, every few
seconds). Through the full stack each one pays for tenant resolution, the
session, auth and CSRF middlewares, DRF's negotiation and rendering; the work
itself is one UPDATE. This wrapper answers exactly

    PUT|POST /api/v1/services/heartbeat/<service_id>   with   Authorization: Bearer <service token>

on a host of the public (operator) site, with the same service functions,
checks and JSON answers as the API view, and hands everything else (other
paths, tenant hosts, operator session or basic auth) to Django unchanged.

Wire it in backoffice/wsgi.py: `application = HeartbeatFastPath(get_wsgi_application())`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from http import HTTPStatus

from django.db import DatabaseError, connection
from django_tenants.utils import schema_context

from core.errors import DomainError

logger = logging.getLogger(__name__)

_PATH = re.compile(r"^/api/v1/services/heartbeat/(?P<service_id>[A-Za-z0-9][A-Za-z0-9._:@-]{0,127})$")
_HOSTS_TTL = 30.0


def _json_response(start_response, status: str, body: dict, extra_headers=()):
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                            *extra_headers])
    return [payload]


class HeartbeatFastPath:
    def __init__(self, app):
        self.app = app
        self._hosts: frozenset[str] = frozenset()
        self._hosts_expire = 0.0
        self._lock = threading.Lock()

    def _public_hosts(self) -> frozenset[str]:
        """Domains of the public tenant, from tenants.Domain (what the tenant middleware would look up)."""
        if time.monotonic() >= self._hosts_expire:
            from tenants.models import Domain

            with self._lock, schema_context("public"):
                self._hosts = frozenset(
                    Domain.objects.filter(tenant__schema_name="public").values_list("domain", flat=True)
                )
                self._hosts_expire = time.monotonic() + _HOSTS_TTL
        return self._hosts

    def __call__(self, environ, start_response):
        if environ.get("REQUEST_METHOD") not in ("PUT", "POST"):
            return self.app(environ, start_response)
        match = _PATH.match(environ.get("PATH_INFO", ""))
        header = environ.get("HTTP_AUTHORIZATION", "")
        if match is None or not header.startswith("Bearer "):
            return self.app(environ, start_response)
        host = environ.get("HTTP_HOST", "").rsplit(":", 1)[0].lower()
        try:
            if host not in self._public_hosts():
                return self.app(environ, start_response)  # a tenant host: Django answers (404, no registry there)
            return self._heartbeat(match["service_id"], header[len("Bearer "):].strip(), start_response)
        except DatabaseError:
            # What Django's request_started/finished would do with a broken connection.
            connection.close()
            logger.exception("Heartbeat fast path: database error")
            return _json_response(start_response, "500 Internal Server Error",
                                  {"error": {"code": "server_error", "message": "Internal server error.",
                                             "detail": {}}})

    def _heartbeat(self, service_id: str, token: str, start_response):
        from registry import registration, selectors

        with schema_context("public"):
            service_name = selectors.token_service_name(token)
            if service_name is None:
                return _json_response(start_response, "401 Unauthorized",
                                      {"error": {"code": "authentication_failed", "message": "Unknown service token.",
                                                 "detail": {}}}, [("WWW-Authenticate", "Bearer")])
            try:
                status = registration.service_heartbeat(service_id=service_id, token_service=service_name)
            except DomainError as error:
                return _json_response(start_response, f"{error.status} {HTTPStatus(error.status).phrase}",
                                      {"error": {"code": error.code, "message": error.message,
                                                 "detail": error.detail}})
        return _json_response(start_response, "200 OK", {"service_id": service_id, "status": status})
