"""TTL checks: passed by heartbeats, critical when none arrives within the TTL (the sweep expires them in SQL)."""

from registry.kinds.base import CheckKind, register

NAME = "ttl"


@register
class TTLKind(CheckKind):
    name = NAME
    order = 0
    label = "TTL (heartbeat)"
    probed = False
    interval_keys = ("ttl", "interval")

    def default_interval(self, conf) -> float:
        return conf.get("DEFAULT_TTL")

    def target(self, check) -> str:
        return "heartbeat"

    def consul_definition(self, check) -> dict:
        return {"TTL": f"{check.interval:g}s"}
