"""An in-process HTTP double of the Consul agent endpoints the sync uses.

A double, because no Consul binary can be installed on this machine. It is
written from Consul's HTTP API documentation (developer.hashicorp.com/consul/
api-docs: agent/service, agent/check, catalog, health) and the agent's
request validation (agent/agent_endpoint.go, agent/structs), and implements only:

    PUT /v1/agent/service/register          body: ID, Name, Tags, Address, Port, Meta, Weights, Checks
    PUT /v1/agent/service/deregister/<id>
    PUT /v1/agent/service/maintenance/<id>   ?enable=true|false&reason=
    PUT /v1/agent/check/pass|warn|fail/<check id>   ?note=
    GET /v1/catalog/services                 {name: [tags...]}
    GET /v1/catalog/service/<name>           [{Node, Address, ServiceID, ServiceName, ServiceAddress, ...}]
    GET /v1/health/service/<name>            [{Node: {...}, Service: {...}, Checks: [...]}]

As in Consul:
- checks registered with a service start critical; a TTL check is set by
  pass/warn/fail, which also restart its TTL, and turns critical with output
  "TTL expired" once its TTL passes without one;
- a service whose check stayed critical longer than its
  DeregisterCriticalServiceAfter (at least one minute) is reaped;
- every node has the "serfHealth" check, which /v1/health/service returns with
  each service's own checks (ServiceID "");
- maintenance mode adds the critical check "_service_maintenance:<id>";
- a registration is refused with 400 for what the agent refuses: Go durations
  it cannot parse ("Request decode failed"), Meta outside Consul's rules (keys
  of letters, digits, _ and - up to 128 characters, no "consul-" prefix, values
  up to 512 characters, 64 pairs: "Invalid Service Meta"), an address of
  0.0.0.0 or ::, a passing weight below 1;
- errors are text/plain, unknown ids answer 404.

Time is the double's own clock: `advance(seconds)` moves it, so tests walk
through TTLs and reap timeouts without waiting. `fail(path, status)` makes one
path answer an error (a Consul server without a leader answers 500), to test
a partial outage. Every request is recorded in `calls`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

NODE = {"ID": "0b1c9d4e-double", "Node": "double-node", "Address": "10.9.0.1", "Datacenter": "dc1"}
DEFAULT_MAINTENANCE_REASON = ("Maintenance mode is enabled for this service, but no reason was provided. "
                              "This is a default message.")
# Go's time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or a bare "0".
_GO_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_MAX_SECONDS = (2**63 - 1) / 1e9
_META_KEY = re.compile(r"^[a-zA-Z0-9_-]+$")
# DeregisterCriticalServiceAfter shorter than this is raised to it (Consul's documented minimum).
MIN_REAP_SECONDS = 60.0


class BadRequest(Exception):
    pass


def parse_go_duration(text) -> float:
    """Seconds from a Go duration string, or BadRequest as Consul's decoder answers it."""
    if not isinstance(text, str):
        raise BadRequest(f"Request decode failed: time: invalid duration {text!r}")
    body = text.lstrip("+-")
    negative = text.startswith("-")
    if body == "0":
        return 0.0
    position, seconds = 0, 0.0
    while position < len(body):
        match = _GO_DURATION_PART.match(body, position)
        if match is None or match.group(1) in ("", "."):
            raise BadRequest(f'Request decode failed: time: invalid duration "{text}"')
        seconds += float(match.group(1)) * _GO_UNITS[match.group(2)]
        position = match.end()
    if not body or seconds > _GO_MAX_SECONDS:
        raise BadRequest(f'Request decode failed: time: invalid duration "{text}"')
    return -seconds if negative else seconds


def _validate_meta(meta) -> None:
    if not meta:
        return
    if len(meta) > 64:
        raise BadRequest("Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs")
    for key, value in meta.items():
        problem = None
        if key == "":
            problem = "Key cannot be blank"
        elif not _META_KEY.match(key):
            problem = "Key contains invalid characters"
        elif len(key) > 128:
            problem = "Key is too long (limit: 128 characters)"
        elif key.startswith("consul-"):
            problem = 'Key prefix "consul-" is reserved for internal use'
        elif not isinstance(value, str) or len(value) > 512:
            problem = "Value is too long (limit: 512 characters)"
        if problem:
            raise BadRequest(f'Invalid Service Meta: Couldn\'t load metadata pair ("{key}", "{value}"): {problem}')


class ConsulDouble:
    def __init__(self):
        self.services: dict[str, dict] = {}  # service id -> service definition as registered
        self.checks: dict[str, dict] = {}  # check id -> {CheckID, Name, Status, ServiceID, ServiceName, Output}
        self.node_status = "passing"  # the node's serfHealth check
        self.calls: list[tuple[str, str]] = []
        self.failures: dict[str, int] = {}  # path -> status it answers instead
        self._offset = 0.0
        self._lock = threading.Lock()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body=None):
                if code >= 400:
                    payload, content_type = str(body).encode(), "text/plain; charset=utf-8"
                else:
                    payload, content_type = (b"" if body is None else json.dumps(body).encode()), "application/json"
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("X-Consul-Index", "1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _route(self, method: str):
                url = urlsplit(self.path)
                path, query = url.path, parse_qs(url.query, keep_blank_values=True)
                double.calls.append((method, path))
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"null") if length else None
                except ValueError as error:
                    self._send(400, f"Request decode failed: {error}")
                    return
                with double._lock:
                    if path in double.failures:
                        self._send(double.failures[path], "rpc error making call: No cluster leader")
                        return
                    double._tick()
                    try:
                        code, answer = double.handle(method, path, query, body)
                    except BadRequest as error:
                        code, answer = 400, str(error)
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

    # --- the double's clock and fault injection --------------------------------------------------------------

    def now(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    def fail(self, path: str, status: int = 500) -> None:
        self.failures[path] = status

    # --- what Consul does ------------------------------------------------------------------------------------

    def _set_status(self, check: dict, status: str, output: str) -> None:
        if status == "critical" and check["Status"] != "critical":
            check["critical_since"] = self.now()
        elif status != "critical":
            check["critical_since"] = None
        check["Status"], check["Output"] = status, output

    def _tick(self) -> None:
        """TTLs that ran out turn critical; services critical past their DeregisterCriticalServiceAfter are reaped."""
        now = self.now()
        for check in self.checks.values():
            if check.get("ttl") is not None and now >= check["expires_at"] and check["Status"] != "critical":
                self._set_status(check, "critical", "TTL expired")
        for check in list(self.checks.values()):
            reap_after = check.get("reap_after")
            since = check.get("critical_since")
            if reap_after is not None and since is not None and check["Status"] == "critical" \
                    and now - since > reap_after and check["ServiceID"] in self.services:
                self._remove(check["ServiceID"])

    def _remove(self, service_id: str) -> None:
        del self.services[service_id]
        self.checks = {cid: c for cid, c in self.checks.items() if c["ServiceID"] != service_id}

    def register(self, definition: dict) -> None:
        """agent/service/register: add or replace a service and its checks (new checks start critical)."""
        if not isinstance(definition, dict) or not definition.get("Name"):
            raise BadRequest("Missing service name")
        if definition.get("Address") in ("0.0.0.0", "::", "[::]"):
            raise BadRequest("Invalid service address")
        weights = definition.get("Weights")
        if weights is not None and (weights.get("Passing", 1) < 1 or weights.get("Warning", 1) < 0):
            raise BadRequest("Invalid Weights: Passing must be greater than 0")
        _validate_meta(definition.get("Meta"))
        parsed = []
        for check in definition.get("Checks") or []:
            durations = {key: parse_go_duration(check[key]) for key in
                         ("TTL", "Interval", "Timeout", "DeregisterCriticalServiceAfter") if check.get(key)}
            parsed.append((check, durations))
        service_id = definition.get("ID") or definition["Name"]
        for check_id in [cid for cid, c in self.checks.items() if c["ServiceID"] == service_id]:
            if check_id not in {c.get("CheckID") for c in definition.get("Checks") or []} \
                    and not check_id.startswith("_service_maintenance:"):
                del self.checks[check_id]
        self.services[service_id] = {**definition, "ID": service_id}
        now = self.now()
        for number, (check, durations) in enumerate(parsed, start=1):
            check_id = check.get("CheckID") or f"service:{service_id}:{number}"
            previous = self.checks.get(check_id, {})
            reap = durations.get("DeregisterCriticalServiceAfter")
            self.checks[check_id] = {
                "CheckID": check_id, "Name": check.get("Name") or check_id, "ServiceID": service_id,
                "ServiceName": definition["Name"], "Status": previous.get("Status", check.get("Status", "critical")),
                "Output": previous.get("Output", ""), "Definition": check, "Node": NODE["Node"],
                "ttl": durations.get("TTL"), "expires_at": previous.get("expires_at", now + durations.get("TTL", 0)),
                "critical_since": previous.get("critical_since", now),
                "reap_after": None if not reap else max(reap, MIN_REAP_SECONDS),
            }

    def handle(self, method, path, query, body):
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "PUT" and parts[:4] == ["v1", "agent", "service", "register"]:
            self.register(body)
            return 200, None
        if method == "PUT" and parts[:4] == ["v1", "agent", "service", "deregister"] and len(parts) == 5:
            if parts[4] not in self.services:
                return 404, f'Unknown service ID "{parts[4]}"'
            self._remove(parts[4])
            return 200, None
        if method == "PUT" and parts[:4] == ["v1", "agent", "service", "maintenance"] and len(parts) == 5:
            return self._maintenance(parts[4], query)
        if method == "PUT" and parts[:3] == ["v1", "agent", "check"] and len(parts) == 5 \
                and parts[3] in ("pass", "warn", "fail"):
            check = self.checks.get(parts[4])
            if check is None or check.get("ttl") is None:
                return 404, f'CheckID "{parts[4]}" does not have associated TTL'
            status = {"pass": "passing", "warn": "warning", "fail": "critical"}[parts[3]]
            self._set_status(check, status, (query.get("note") or [""])[0])
            check["expires_at"] = self.now() + check["ttl"]
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
                 "Checks": [self._node_check(), *(self._public(c) for c in self.checks.values()
                                                  if c["ServiceID"] == s["ID"])]}
                for s in self.services.values() if s["Name"] == parts[3]
            ]
        return 404, f"No route {method} {path} in the double"

    def _maintenance(self, service_id: str, query) -> tuple[int, object]:
        if "enable" not in query:
            return 400, "Missing value for enable"
        raw = query["enable"][0]
        if raw not in ("true", "false", "1", "0", "True", "False"):
            return 400, f'Invalid value for enable: "{raw}"'
        if service_id not in self.services:
            return 404, f'No service registered with ID "{service_id}"'
        check_id = f"_service_maintenance:{service_id}"
        if raw in ("true", "1", "True"):
            self.checks[check_id] = {
                "CheckID": check_id, "Name": "Service Maintenance Mode", "ServiceID": service_id,
                "ServiceName": self.services[service_id]["Name"], "Status": "critical", "Output": "",
                "Notes": (query.get("reason") or [""])[0] or DEFAULT_MAINTENANCE_REASON, "Node": NODE["Node"],
                "critical_since": None,  # never reaped for being in maintenance
            }
        else:
            self.checks.pop(check_id, None)
        return 200, None

    def _node_check(self) -> dict:
        output = "Agent alive and reachable" if self.node_status == "passing" else "Agent not live or unreachable"
        return {"Node": NODE["Node"], "CheckID": "serfHealth", "Name": "Serf Health Status",
                "Status": self.node_status, "Notes": "", "ServiceID": "", "ServiceName": "", "Output": output}

    @staticmethod
    def _public(check: dict) -> dict:
        return {key: value for key, value in check.items()
                if key not in ("Definition", "ttl", "expires_at", "critical_since", "reap_after")}

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
