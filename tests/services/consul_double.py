"""An in-process HTTP double of the Consul agent endpoints the sync uses.

A double, because no Consul binary can be installed on this machine. It is
written from Consul's HTTP API documentation (developer.hashicorp.com/consul/
api-docs: agent/service, agent/check, catalog, health) and implements only:

    PUT /v1/agent/service/register          body: ID, Name, Tags, Address, Port, Meta, Weights, Checks
    PUT /v1/agent/service/deregister/<id>
    PUT /v1/agent/check/pass/<check id>      ?note=
    GET /v1/catalog/services                 {name: [tags...]}
    GET /v1/catalog/service/<name>           [{Node, Address, ServiceID, ServiceName, ServiceAddress, ...}]
    GET /v1/health/service/<name>            [{Node: {...}, Service: {...}, Checks: [...]}]

As in Consul, checks registered with a service start critical, a TTL check
turns passing through check/pass, and unknown ids answer 404. Every request is
recorded in `calls` so tests can see exactly what the client sent.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

NODE = {"ID": "0b1c9d4e-double", "Node": "double-node", "Address": "10.9.0.1", "Datacenter": "dc1"}


class ConsulDouble:
    def __init__(self):
        self.services: dict[str, dict] = {}  # service id -> service definition as registered
        self.checks: dict[str, dict] = {}  # check id -> {CheckID, Name, Status, ServiceID, ServiceName, Output}
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body=None):
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Consul-Index", "1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _route(self, method: str):
                url = urlsplit(self.path)
                path, query = url.path, parse_qs(url.query)
                double.calls.append((method, path))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                with double._lock:
                    code, answer = double.handle(method, path, query, body)
                self._send(code, answer)

            def do_GET(self):  # noqa: N802
                self._route("GET")

            def do_PUT(self):  # noqa: N802
                self._route("PUT")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # --- what Consul does ------------------------------------------------------------------------------------

    def register(self, definition: dict) -> None:
        """agent/service/register: add or replace a service and its checks (new checks start critical)."""
        service_id = definition.get("ID") or definition["Name"]
        for check_id in [cid for cid, c in self.checks.items() if c["ServiceID"] == service_id]:
            if check_id not in {c.get("CheckID") for c in definition.get("Checks") or []}:
                del self.checks[check_id]
        self.services[service_id] = {**definition, "ID": service_id}
        for number, check in enumerate(definition.get("Checks") or [], start=1):
            check_id = check.get("CheckID") or f"service:{service_id}:{number}"
            previous = self.checks.get(check_id, {})
            self.checks[check_id] = {
                "CheckID": check_id, "Name": check.get("Name") or check_id, "ServiceID": service_id,
                "ServiceName": definition["Name"], "Status": previous.get("Status", check.get("Status", "critical")),
                "Output": previous.get("Output", ""), "Definition": check, "Node": NODE["Node"],
            }

    def handle(self, method, path, query, body):
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "PUT" and parts[:4] == ["v1", "agent", "service", "register"]:
            if not isinstance(body, dict) or not body.get("Name"):
                return 400, "Missing service name"
            self.register(body)
            return 200, None
        if method == "PUT" and parts[:4] == ["v1", "agent", "service", "deregister"] and len(parts) == 5:
            if parts[4] not in self.services:
                return 404, f"Unknown service ID {parts[4]!r}"
            del self.services[parts[4]]
            self.checks = {cid: c for cid, c in self.checks.items() if c["ServiceID"] != parts[4]}
            return 200, None
        if method == "PUT" and parts[:4] == ["v1", "agent", "check", "pass"] and len(parts) == 5:
            check = self.checks.get(parts[4])
            if check is None:
                return 404, f"Unknown check ID {parts[4]!r}"
            check["Status"], check["Output"] = "passing", (query.get("note") or [""])[0]
            return 200, None
        if method == "GET" and parts == ["v1", "catalog", "services"]:
            catalog: dict[str, list] = {"consul": []}
            for service in self.services.values():
                tags = catalog.setdefault(service["Name"], [])
                tags.extend(tag for tag in service.get("Tags") or [] if tag not in tags)
            return 200, catalog
        if method == "GET" and parts[:3] == ["v1", "catalog", "service"] and len(parts) == 4:
            return 200, [self._catalog_entry(s) for s in self.services.values() if s["Name"] == parts[3]]
        if method == "GET" and parts[:3] == ["v1", "health", "service"] and len(parts) == 4:
            return 200, [
                {"Node": NODE, "Service": self._agent_service(s),
                 "Checks": [{k: v for k, v in c.items() if k != "Definition"}
                            for c in self.checks.values() if c["ServiceID"] == s["ID"]]}
                for s in self.services.values() if s["Name"] == parts[3]
            ]
        return 404, f"No route {method} {path} in the double"

    @staticmethod
    def _agent_service(service: dict) -> dict:
        return {"ID": service["ID"], "Service": service["Name"], "Tags": service.get("Tags") or [],
                "Address": service.get("Address", ""), "Port": service.get("Port", 0),
                "Meta": service.get("Meta") or {}, "Weights": service.get("Weights") or {"Passing": 1, "Warning": 1}}

    @staticmethod
    def _catalog_entry(service: dict) -> dict:
        return {"ID": NODE["ID"], "Node": NODE["Node"], "Address": NODE["Address"], "Datacenter": "dc1",
                "ServiceID": service["ID"], "ServiceName": service["Name"], "ServiceTags": service.get("Tags") or [],
                "ServiceAddress": service.get("Address", ""), "ServicePort": service.get("Port", 0),
                "ServiceMeta": service.get("Meta") or {},
                "ServiceWeights": service.get("Weights") or {"Passing": 1, "Warning": 1}}
