"""manage.py mcp_serve --port N: one NBA MCP server process (Streamable HTTP at /mcp, every tenant host)."""

import os
import signal
import socket
import sys

import uvicorn
from django.core.management.base import BaseCommand, CommandError

from nba_mcp.calls import call_log
from nba_mcp.registry import McpRegistration
from nba_mcp.server import SERVICE_NAME, TOOL_NAMES, VERSION, build_app, instance_id
from registry.models import UNROUTABLE_HOSTS


class Command(BaseCommand):
    help = "Serve the NBA MCP server (Streamable HTTP) at http://<tenant host>:<port>/mcp for every tenant."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("COURTSIDE_MCP_HOST", "127.0.0.1"),
                            help="Address to listen on (default 127.0.0.1).")
        parser.add_argument("--port", type=int, default=int(os.environ.get("COURTSIDE_MCP_PORT", "8100")),
                            help="Port to listen on; 0 picks a free one (default 8100).")
        parser.add_argument("--no-register", action="store_true",
                            help="Do not register in the service registry as nba-mcp-server.")
        parser.add_argument("--json-response", action="store_true",
                            help="Answer each request with one JSON body instead of an SSE stream.")

    def handle(self, *args, host, port, no_register, json_response, **options):
        if not 0 <= port <= 65535:
            raise CommandError(f"--port must be between 0 and 65535, not {port}.")
        # The event loop hands every call to an ORM worker thread and back (nba_mcp.tenancy): with Python's
        # 5 ms GIL switch interval each hand-off waits behind busy workers. 0.5 ms took 16 clients from
        # 0.46-0.73 of the REST API's throughput to 0.86-1.24 (bench/mcp.py, nba_mcp/README.md).
        sys.setswitchinterval(float(os.environ.get("COURTSIDE_MCP_SWITCH_INTERVAL") or 0.0005))
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError as error:
            raise CommandError(f"Cannot listen on {host}:{port}: {error.strerror}.") from error
        listener.listen(512)
        port = listener.getsockname()[1]
        service_id = instance_id(port)
        app = build_app(instance=service_id, json_response=json_response)
        server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False,
                                               timeout_graceful_shutdown=10))
        registration = None
        if not no_register:
            registration = McpRegistration(service_id=service_id, name=SERVICE_NAME,
                                           host=socket.gethostname() if host in UNROUTABLE_HOSTS else host, port=port,
                                           version=VERSION, tools=len(TOOL_NAMES), pid=os.getpid()).start()
        self.stdout.write(f"MCP server {service_id} listening on http://{host}:{port}/mcp "
                          f"({len(TOOL_NAMES)} tools)", ending="\n")
        self.stdout.flush()
        # uvicorn stops gracefully on SIGTERM and then raises the signal again with the handler it found:
        # let that be an exit that runs the `finally` below (deregistration), not the default kill.
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
        try:
            server.run(sockets=[listener])
        finally:
            call_log.flush()  # the last calls' rows (nba_mcp.calls.CallLog)
            if registration is not None:
                registration.stop()
