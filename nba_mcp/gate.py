"""The HTTP gate in front of the MCP SDK: /health, the tenant and its key, the Origin, the body bound, cancellation.

`TenantGate` (outermost ASGI middleware) answers `/health` itself and, for `/mcp`, resolves the tenant from
the Host header and requires one of that tenant's active API keys as `Authorization: Bearer cs_…`: a key of
another tenant, a revoked key or none is an HTTP 401 before the MCP layer reads the body, an unknown host a
404. It stands in for the SDK's DNS-rebinding check (which only knows a fixed list of hosts): a host must be
a tenant's domain, and a browser's Origin must be that host. It reads a POST's body whole, at most
MAX_BODY_BYTES (a 413 past it), acts on a `notifications/cancelled` in it, and hands the body on.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse

from nba_mcp import training
from nba_mcp.tenancy import Principal, Refusal, authenticate, hostname, in_schema, in_thread

MCP_PATH = "/mcp"
HEALTH_PATH = "/health"
STATE_KEY = "courtside_principal"
# One JSON-RPC message per POST; the largest tool call (arguments are bounded by the tools' schemas) is
# a few KiB. The SDK reads any body whole, so the gate bounds it first.
MAX_BODY_BYTES = 256 * 1024


def principal_of(request: Request | None) -> Principal:
    principal = getattr(getattr(request, "state", None), STATE_KEY, None)
    if principal is None:  # TenantGate lets no /mcp request through without one
        raise RuntimeError("An MCP request reached a tool without a tenant.")
    return principal


def _error(status: int, code: str, message: str, detail: dict | None = None, headers: dict | None = None):
    return JSONResponse({"error": {"code": code, "message": message, "detail": detail or {}}}, status_code=status,
                        headers=headers)


def _database_answers() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


class TenantGate:
    """ASGI middleware: /health; for /mcp the tenant from the host and its Bearer key, or a JSON refusal."""

    def __init__(self, app, *, service: str, tools: int, instance: str = ""):
        self.app = app
        self.about = {"status": "passing", "service": service, "tools": tools, "instance": instance}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        if scope["path"] == HEALTH_PATH:
            try:
                await in_schema("public", _database_answers)
            except Exception as error:  # noqa: BLE001 - the health check says why it fails
                return await _error(503, "unhealthy", f"The database cannot be reached: {error}")(scope, receive, send)
            return await JSONResponse(self.about)(scope, receive, send)
        if scope["path"].rstrip("/") != MCP_PATH:
            return await _error(404, "not_found", f"MCP is served at {MCP_PATH}.")(scope, receive, send)
        origin = request.headers.get("origin")
        if origin and hostname(origin.split("://", 1)[-1]) != hostname(request.headers.get("host")):
            return await _error(403, "bad_origin", "A browser page of another site may not call this MCP server.",
                                {"origin": origin[:200]})(scope, receive, send)
        try:
            principal = await in_thread(authenticate, host_header=request.headers.get("host"),
                                        authorization=request.headers.get("authorization"))
        except Refusal as refusal:
            headers = {"WWW-Authenticate": 'Bearer realm="courtside-mcp"'} if refusal.status == 401 else None
            return await _error(refusal.status, refusal.code, refusal.message, refusal.detail,
                                headers)(scope, receive, send)
        scope.setdefault("state", {})[STATE_KEY] = principal
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            body = await _read_body(scope, receive, limit=MAX_BODY_BYTES)
        except BodyTooLarge:
            return await _error(413, "body_too_large", f"An MCP message is at most {MAX_BODY_BYTES:,} bytes.",
                                {"max_bytes": MAX_BODY_BYTES})(scope, receive, send)
        except ClientDisconnected:
            return None
        await _act_on_cancellation(principal, body)
        return await self.app(scope, _replay(body, receive), send)


class BodyTooLarge(Exception):
    pass


class ClientDisconnected(Exception):
    pass


async def _read_body(scope, receive, *, limit: int) -> bytes:
    """The request's whole body, refused past `limit` bytes (by Content-Length or by what arrives)."""
    declared = dict(scope.get("headers") or []).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """An ASGI receive that hands the SDK the body already read, then the client's own messages."""
    delivered = False

    async def replay():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _act_on_cancellation(principal: Principal, body: bytes) -> None:
    """A `notifications/cancelled` cancels the task run the cancelled request submitted.

    On the stateless transport a notification comes on a POST of its own: the SDK answers 202 and
    terminates that request's transport at once, so a handler inside the SDK may be torn down before
    it runs (under load it was, and the run went on). Acting here, before the 202, makes it certain.
    """
    if b"notifications/cancelled" not in body:
        return
    try:
        message = json.loads(body)
    except ValueError:
        return  # the SDK answers malformed JSON with its own parse error
    if not isinstance(message, dict) or message.get("method") != "notifications/cancelled":
        return
    params = message.get("params")
    request_id = params.get("requestId") if isinstance(params, dict) else None
    if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
        await in_thread(training.cancel_for_request, principal=principal, request_id=request_id)
