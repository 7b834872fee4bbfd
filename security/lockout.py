"""Login throttling on top of django-axes: the client address, the lockout answer, clearing lockouts.

Axes' tables live in every schema (axes is a shared and a tenant app), beside
the users they protect: `coach` on lakers and `coach` on warriors are two
people with two attempt counters, and attackers of one site cannot lock out a
user of another. A lockout is per site (schema) + username + client address.
"""

from __future__ import annotations

import datetime as dt
import logging

from axes.models import AccessAttempt
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from security import audit

log = logging.getLogger("courtside.security")

LOCKOUT_CODE = "login_locked_out"


def cooloff() -> dt.timedelta:
    return settings.AXES_COOLOFF_TIME


def cooloff_minutes() -> int:
    return max(1, round(cooloff().total_seconds() / 60))


def lockout_message() -> str:
    return (f"Too many failed logins: this account is locked for {cooloff_minutes()} minutes for your address. "
            "Try again later, or ask an administrator to clear the lockout.")


def client_str(username, ip_address, user_agent, path_info, request) -> str:
    """AXES_CLIENT_STR_CALLABLE: how axes' log lines name a client, with the site."""
    return f"site={connection.schema_name} username={username!r} address={ip_address} path={path_info}"


# ------------------------------------------------------------------ reads and writes of the current schema

def active_lockouts():
    """Attempts of the current schema that lock their username + address out right now."""
    return AccessAttempt.objects.filter(
        failures_since_start__gte=settings.AXES_FAILURE_LIMIT, attempt_time__gte=timezone.now() - cooloff()
    )


def lockout_clear(*, attempts, cleared_by: str = "") -> int:
    """Delete these attempts (of the current schema), which ends their lockouts; each clear is audited."""
    with transaction.atomic():
        rows = list(attempts.select_for_update())
        for attempt in rows:
            audit.record_event(attempt, action="delete", changes={
                "username": [attempt.username, None], "ip_address": [attempt.ip_address, None],
                "failures_since_start": [attempt.failures_since_start, None],
            })
        AccessAttempt.objects.filter(pk__in=[attempt.pk for attempt in rows]).delete()
    log.warning("Login lockouts cleared: site=%s count=%d by=%s", connection.schema_name, len(rows),
                cleared_by or "-")
    return len(rows)


def active_lockouts_by_site(*, limit: int = 500) -> list[dict]:
    """Every site (schema) with active lockouts: how many username + address pairs, the latest failure.

    One UNION ALL over the schemas' axes tables (schema names are validated
    identifiers, quoted anyway), so the operator sees which tenants are under
    attack without opening each.
    """
    quote = connection.ops.quote_name
    parts, params = [], []
    since = timezone.now() - cooloff()
    for schema in audit.audit_schemas():
        parts.append(f"SELECT %s AS site, count(*) AS locked, max(attempt_time) AS latest "
                     f"FROM {quote(schema)}.{quote(AccessAttempt._meta.db_table)} "
                     f"WHERE failures_since_start >= %s AND attempt_time >= %s")
        params += [schema, settings.AXES_FAILURE_LIMIT, since]
    if not parts:
        return []
    sql = f"SELECT site, locked, latest FROM ({' UNION ALL '.join(parts)}) AS s WHERE locked > 0 " \
          f"ORDER BY locked DESC, site LIMIT %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        return [{"site": site, "locked": locked, "latest": latest} for site, locked, latest in cursor.fetchall()]
