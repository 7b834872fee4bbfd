"""PostgreSQL checks: connect to a DSN and run SELECT 1 within the timeout.

    {"type": "postgres", "dsn": "postgresql://monitor:…@db.internal:5432/app", "interval": "10s"}

The DSN is a secret: stored encrypted (HealthCheck.secret), never returned by the API, shown in the admin
or written to a log or an event; the admin shows its host, port and database only.
"""

from __future__ import annotations

import psycopg
from django.core.exceptions import ValidationError
from psycopg.conninfo import conninfo_to_dict

from core.masking import mask_text
from registry.inputs import text
from registry.kinds import _secrets
from registry.kinds.base import SECRET, CheckKind, register
from registry.status import Status


def _parts(dsn: str) -> dict:
    try:
        return conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise ValidationError({"dsn": "Not a PostgreSQL connection string (postgresql://user:password@host:port/db "
                                      "or host=… dbname=…)."}) from None


@register
class PostgresKind(CheckKind):
    name = "postgres"
    label = "PostgreSQL (SELECT 1)"
    order = 3
    spec_fields = {"dsn": SECRET}

    def fields_from_spec(self, spec: dict, *, host: str) -> dict:
        dsn = text(spec.get("dsn"), field_name="dsn")
        if not dsn:
            raise ValidationError({"dsn": "A PostgreSQL check needs a DSN."})
        parts = _parts(dsn)
        target = f"{parts.get('host') or host}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"
        return {"secret": _secrets.seal(dsn), "params": {"target": target}}

    def spec_from_check(self, check) -> dict:
        return {"dsn": _secrets.unseal(check.secret)}

    def clean(self, check) -> dict[str, str]:
        return {} if check.secret else {"secret": "A PostgreSQL check needs a DSN."}

    def target(self, check) -> str:
        return f"postgresql {(check.params or {}).get('target', '')}"

    async def probe(self, check: dict, *, http) -> tuple[str, str]:
        dsn = _secrets.unseal(check["secret"])
        target = (check["params"] or {}).get("target", "")
        try:
            connection = await psycopg.AsyncConnection.connect(
                dsn, connect_timeout=max(1, int(check["timeout"])), autocommit=True,
                application_name="courtside-health")
        except psycopg.Error as error:
            return Status.CRITICAL, mask_text(f"PostgreSQL {target}: {str(error).strip()}")[:500]
        try:
            async with connection.cursor() as cursor:
                await cursor.execute("SELECT 1")
                row = await cursor.fetchone()
        except psycopg.Error as error:
            return Status.CRITICAL, mask_text(f"PostgreSQL {target}: SELECT 1 failed: {str(error).strip()}")[:500]
        finally:
            await connection.close()
        if row != (1,):
            return Status.CRITICAL, f"PostgreSQL {target}: SELECT 1 returned {row!r}"
        return Status.PASSING, f"PostgreSQL {target}: SELECT 1 ok"
