"""Redis checks: PING a Redis URL within the timeout; PONG passes.

    {"type": "redis", "dsn": "redis://:…@cache.internal:6379/0", "interval": "10s"}

The URL is a secret (it may hold a password): stored encrypted, never returned or shown (the admin shows
host, port and database), masked in outputs.
"""

from __future__ import annotations

import redis.asyncio
from django.core.exceptions import ValidationError
from redis.connection import parse_url
from redis.exceptions import RedisError

from core.masking import mask_text
from registry.inputs import text
from registry.kinds import _secrets
from registry.kinds.base import SECRET, CheckKind, register
from registry.status import Status


@register
class RedisKind(CheckKind):
    name = "redis"
    label = "Redis (PING)"
    order = 4
    spec_fields = {"dsn": SECRET}

    def fields_from_spec(self, spec: dict, *, host: str) -> dict:
        url = text(spec.get("dsn"), field_name="dsn")
        if not url:
            raise ValidationError({"dsn": "A Redis check needs a URL (redis://[:password@]host:port/db)."})
        try:
            parts = parse_url(url)
        except ValueError:
            raise ValidationError({"dsn": "Not a Redis URL (redis://, rediss:// or unix://)."}) from None
        where = parts.get("path") or f"{parts.get('host', 'localhost')}:{parts.get('port', 6379)}"
        return {"secret": _secrets.seal(url), "params": {"target": f"{where}/{parts.get('db', 0)}"}}

    def spec_from_check(self, check) -> dict:
        return {"dsn": _secrets.unseal(check.secret)}

    def clean(self, check) -> dict[str, str]:
        return {} if check.secret else {"secret": "A Redis check needs a URL."}

    def target(self, check) -> str:
        return f"redis {(check.params or {}).get('target', '')}"

    async def probe(self, check: dict, *, http) -> tuple[str, str]:
        target = (check["params"] or {}).get("target", "")
        client = redis.asyncio.from_url(_secrets.unseal(check["secret"]), socket_connect_timeout=check["timeout"],
                                        socket_timeout=check["timeout"])
        try:
            answer = await client.ping()
        except RedisError as error:
            return Status.CRITICAL, mask_text(f"Redis {target}: {type(error).__name__}: {error}")[:500]
        finally:
            await client.aclose()
        return (Status.PASSING, f"Redis {target}: PONG") if answer else (Status.CRITICAL, f"Redis {target}: no PONG")
