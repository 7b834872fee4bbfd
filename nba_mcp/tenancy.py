"""Who an MCP request is for, and running the ORM in that tenant's schema from the async server.

django-tenants sets the schema on the thread's connection for a WSGI request; the MCP server is
async, and an ORM call made through sync_to_async gets whatever schema that worker thread's
connection was last left in (the public one at first: django-tenants #518, #1168). So every
unit of ORM work here runs through `in_schema`, which sets the schema in the thread that runs
the work and puts the connection back to public afterwards, every time.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connection
from django_tenants.utils import remove_www, schema_context

from tenants import services as tenant_services
from tenants.models import ApiKey, Domain, Tenant

# The worker threads that run the ORM for the async server, each with its own database connection. The
# event loop's default pool has min(32, CPUs + 4) threads: 6 on a 2-core machine, fewer than the
# clients one process serves at once. COURTSIDE_MCP_THREADS sizes it (and so the connections it holds).
EXECUTOR = ThreadPoolExecutor(max_workers=max(1, int(os.environ.get("COURTSIDE_MCP_THREADS", "16"))),
                              thread_name_prefix="mcp-orm")

_BEARER = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Principal:
    """An authenticated MCP request: the tenant its host names and the tenant's key it carries."""

    tenant: Tenant
    key: ApiKey

    @property
    def schema_name(self) -> str:
        return self.tenant.schema_name


class Refusal(Exception):
    """An MCP HTTP request refused before the MCP layer sees it (HTTP status, JSON error shape)."""

    def __init__(self, status: int, code: str, message: str, detail: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail or {}


def hostname(host_header: str | None) -> str:
    """`LAKERS.localhost.:8100` is `lakers.localhost`, as the web server's tenant lookup reads it."""
    host = (host_header or "").strip().lower()
    if host.startswith("["):  # [::1]:8100
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return remove_www(host.rstrip("."))


def tenant_for_host(host_header: str | None) -> Tenant:
    name = hostname(host_header)
    domain = Domain.objects.select_related("tenant__plan").filter(domain=name).first()
    if domain is None or domain.tenant.schema_name == "public":
        raise Refusal(404, "unknown_host", f"No Courtside MCP site is served at {name!r}.", {"host": name})
    return domain.tenant


def authenticate(*, host_header: str | None, authorization: str | None) -> Principal:
    """The request's tenant (from its host) and its key, or a Refusal: 404 unknown host, 401, 403 suspended.

    Runs in a worker thread (it reads the public schema). A key of another tenant, a revoked key, a
    malformed header and no header all get the same 401: nothing tells a caller which one it was.
    """
    connection_checkup()
    with schema_context("public"):
        tenant = tenant_for_host(host_header)
        match = _BEARER.match(authorization or "")
        key = tenant_services.api_key_authenticate(raw_key=match.group(1), tenant=tenant) if match else None
        if key is None:
            raise Refusal(401, "not_authenticated",
                          "Send one of this tenant's active API keys as `Authorization: Bearer cs_…`.")
        if tenant.is_suspended:
            raise Refusal(403, "tenant_suspended", f"{tenant.brand_name} is suspended; contact Courtside support.")
    return Principal(tenant=tenant, key=key)


_checked = threading.local()


def connection_checkup() -> None:
    """What Django does around each request, for a worker thread's long-lived connection: drop it once it is
    obsolete (CONN_MAX_AGE) or broken. At most once a second per thread: with CONN_HEALTH_CHECKS each checkup
    costs the next query a round trip (`SELECT 1`), and a call makes several hops."""
    now = time.monotonic()
    if now - getattr(_checked, "at", 0.0) >= 1.0 or connection.errors_occurred:
        _checked.at = now
        close_old_connections()


def _run_in_schema(schema_name: str, work: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
    connection_checkup()
    try:
        with schema_context(schema_name):
            return work(*args, **kwargs)
    finally:
        connection.set_schema_to_public()


async def in_schema(schema_name: str, work: Callable[..., Any], *args, **kwargs) -> Any:
    """Run `work(*args, **kwargs)` in a worker thread whose connection is set to `schema_name` for it."""
    return await sync_to_async(_run_in_schema, thread_sensitive=False, executor=EXECUTOR)(
        schema_name, work, args, kwargs)


async def in_tenant(principal: Principal, work: Callable[..., Any], *args, **kwargs) -> Any:
    return await in_schema(principal.schema_name, work, *args, **kwargs)


async def in_thread(function: Callable[..., Any], /, *args, **kwargs) -> Any:
    """Run `function` in one of the ORM worker threads (it sets its own schema: tool_call, authenticate)."""
    return await sync_to_async(function, thread_sensitive=False, executor=EXECUTOR)(*args, **kwargs)
