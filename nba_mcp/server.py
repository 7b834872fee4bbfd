"""The NBA MCP server: the official SDK's MCPServer over Streamable HTTP, behind Courtside's tenant gate.

`build_app()` is the ASGI application `manage.py mcp_serve` runs under uvicorn. It is assembled here from:

- `nba_mcp.gate.TenantGate` (outermost): /health; for /mcp the tenant from the Host header and its Bearer
  key, the Origin, the body bound and cancellation (see there);
- `nba_mcp.tools.build_server()`: the tools, resources and prompt, each tool through `nba_mcp.calls`;
- `nba_mcp.outputs`: the bounded argument types and the structured-output models of the tools.

Stateless Streamable HTTP (the SDK's `stateless_http`): no session lives in a process, so any instance of
`nba-mcp-server` can answer any request and the registry can balance across them.
"""

from __future__ import annotations

import os
import socket

from mcp.server.transport_security import TransportSecuritySettings

from nba_mcp.gate import MCP_PATH, TenantGate
from nba_mcp.tools import SERVICE_NAME, TOOL_NAMES, VERSION, build_server

__all__ = ["SERVICE_NAME", "TOOL_NAMES", "VERSION", "build_app", "build_server", "instance_id"]


def instance_id(port: int | None = None) -> str:
    return f"mcp-{socket.gethostname()}-{port or 0}-{os.getpid()}"


def build_app(*, instance: str = "", json_response: bool = False):
    server = build_server()
    server.instance = instance
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=json_response,
        # Hosts are checked by TenantGate against the tenants' domains (and Origin against the host).
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return TenantGate(app, service=SERVICE_NAME, tools=len(TOOL_NAMES), instance=instance)
