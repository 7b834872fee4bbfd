"""TCP checks: a connection to host:port that opens within the timeout passes."""

import asyncio

from django.core.exceptions import ValidationError

from registry.inputs import text, whole_number
from registry.kinds.base import INTEGER, TEXT, CheckKind, register
from registry.status import Status


@register
class TCPKind(CheckKind):
    name = "tcp"
    order = 2
    label = "TCP"
    spec_fields = {"tcp": (TEXT, 260), "tcp_host": (TEXT, 253), "tcp_port": INTEGER}

    def fields_from_spec(self, spec: dict, *, host: str) -> dict:
        tcp_host = text(spec.get("tcp_host"), field_name="tcp_host")
        tcp_port = whole_number(spec.get("tcp_port"), field_name="tcp_port")
        if spec.get("tcp"):  # Consul's "host:port" form
            tcp_host, _, port_text = text(spec["tcp"], field_name="tcp").rpartition(":")
            if not port_text.isascii() or not port_text.isdigit() or len(port_text) > 5:
                raise ValidationError({"tcp": f"{spec['tcp']!r} is not host:port."})
            tcp_port = int(port_text)
        return {"tcp_host": tcp_host or host, "tcp_port": tcp_port}

    def spec_from_check(self, check) -> dict:
        return {"tcp_host": check.tcp_host, "tcp_port": check.tcp_port}

    def clean(self, check) -> dict[str, str]:
        return {} if check.tcp_port else {"tcp_port": "A TCP check needs a port."}

    def target(self, check) -> str:
        return f"{check.tcp_host}:{check.tcp_port}"

    async def probe(self, check: dict, *, http) -> tuple[str, str]:
        _, writer = await asyncio.open_connection(check["tcp_host"], check["tcp_port"])
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return Status.PASSING, f"TCP connect {check['tcp_host']}:{check['tcp_port']}: success"

    def consul_definition(self, check) -> dict:
        return {"TCP": f"{check.tcp_host}:{check.tcp_port}", "Interval": f"{check.interval:g}s",
                "Timeout": f"{check.timeout:g}s"}
