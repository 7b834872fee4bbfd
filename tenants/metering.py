"""Admission of API requests: a tenant's daily call quota, burst limit and concurrency leases; anonymous limits.

One SQL call per authenticated tenant API request
(public.courtside_admit_request, tenants.0002, .0004, .0006) takes a lease
and counts the call against the day and the minute atomically in PostgreSQL;
a second releases the lease. See that function for why this cannot race.
Anonymous requests (the OpenAPI schema and the docs page need no key) never
touch a tenant's quota: they are counted per client address and host by
public.courtside_admit_anonymous, also one atomic statement.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from backoffice.db import raw_cursor
from backoffice.errors import DomainError
from configuration import keys
from tenants.models import Tenant, UsageDay

BURST_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Admission:
    token: uuid.UUID | None
    limit: int | None
    calls: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.calls)


def seconds_until_utc_midnight(now: dt.datetime | None = None) -> int:
    now = (now or timezone.now()).astimezone(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return max(1, int((midnight - now).total_seconds() + 0.999))


def rate_limit_headers(*, limit: int | None, remaining: int | None) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "unlimited" if limit is None else str(limit),
        "X-RateLimit-Remaining": "unlimited" if remaining is None else str(remaining),
    }


def request_admit(*, tenant: Tenant) -> Admission:
    """Count one API call (day and minute) and take a concurrency lease, or raise a 429 DomainError."""
    plan = tenant.plan
    call_limit = plan.api_calls_per_day if plan else None
    concurrency_limit = plan.max_concurrent_requests if plan else None
    burst_limit = keys.api_burst_limit(tenant=tenant.schema_name)
    token = uuid.uuid4() if concurrency_limit is not None else None
    now = timezone.now()
    with raw_cursor() as cursor:
        cursor.execute(
            "SELECT outcome, calls, active, retry_after"
            " FROM public.courtside_admit_request(%s, %s, %s, %s, %s, %s, %s)",
            [tenant.pk, now.astimezone(dt.UTC).date(), call_limit, concurrency_limit, token,
             settings.TENANT_REQUEST_LEASE_SECONDS, burst_limit],
        )
        outcome, calls, active, retry_after = cursor.fetchone()
    if outcome != "ok":
        refusal_count(tenant=tenant, day=now.astimezone(dt.UTC).date(),
                      code={"calls": "daily_quota_exceeded", "burst": "burst_limit_exceeded",
                            "concurrency": "concurrency_limit_exceeded"}[outcome])
    if outcome == "calls":
        retry_after = seconds_until_utc_midnight(now)
        raise DomainError(
            f"The {plan.name} plan allows {call_limit} API calls per UTC day; the quota resets at midnight UTC.",
            code="daily_quota_exceeded", status=429,
            detail={"limit": call_limit, "retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after), **rate_limit_headers(limit=call_limit, remaining=0)},
        )
    if outcome == "burst":
        raise DomainError(
            f"{tenant.brand_name} may make {burst_limit} API calls a minute; retry in {retry_after} s.",
            code="burst_limit_exceeded", status=429,
            detail={"limit": burst_limit, "window_seconds": BURST_WINDOW_SECONDS, "retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
    if outcome == "concurrency":
        raise DomainError(
            f"The {plan.name} plan allows {concurrency_limit} concurrent API requests; retry shortly.",
            code="concurrency_limit_exceeded", status=429,
            detail={"limit": concurrency_limit, "in_flight": active},
            headers={"Retry-After": "1"},
        )
    return Admission(token=token, limit=call_limit, calls=calls)


def refusal_count(*, tenant: Tenant, day: dt.date, code: str) -> None:
    """Count one refused call on the tenant's ledger row of `day`, by the limit that refused it (one upsert)."""
    column = UsageDay.REFUSAL_COLUMNS[code]  # a fixed column name, never input
    with raw_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO public.tenants_usageday AS u (tenant_id, date, api_calls, peak_concurrency, "
            f"storage_bytes, users, saved_models, {column}) VALUES (%s, %s, 0, 0, 0, 0, 0, 1) "
            f"ON CONFLICT (tenant_id, date) DO UPDATE SET {column} = u.{column} + 1",
            [tenant.pk, day],
        )


def client_address_bucket(address: str) -> str:
    """What one anonymous client is: its IPv4 address, or its IPv6 /64 (one subscriber's whole prefix)."""
    try:
        parsed = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return "unknown"
    if parsed.version == 6:
        if parsed.ipv4_mapped is not None:  # ::ffff:a.b.c.d is that IPv4 client
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def anonymous_admit(*, tenant: Tenant, address: str) -> None:
    """Count one anonymous request of a client address on a tenant's (or the operator's) host, or raise a 429.

    Never a tenant's quota: no call is counted against its day or minute and no lease is taken.
    """
    limit = keys.anonymous_rate_limit(tenant=tenant.schema_name)
    if limit is None:
        return
    with raw_cursor() as cursor:
        cursor.execute("SELECT calls, retry_after FROM public.courtside_admit_anonymous(%s, %s, %s)",
                       [tenant.pk, client_address_bucket(address), limit])
        calls, retry_after = cursor.fetchone()
    if calls is None:
        raise DomainError(
            f"Anonymous clients may make {limit} requests a minute here; retry in {retry_after} s, "
            "or send an API key.",
            code="anonymous_rate_limit_exceeded", status=429,
            detail={"limit": limit, "window_seconds": BURST_WINDOW_SECONDS, "retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


def request_release(*, token: uuid.UUID | None) -> None:
    if token is None:
        return
    with raw_cursor() as cursor:
        cursor.execute("SELECT public.courtside_release_request(%s)", [token])


def calls_today(*, tenant: Tenant) -> int:
    day = timezone.now().astimezone(dt.UTC).date()
    return UsageDay.objects.filter(tenant=tenant, date=day).values_list("api_calls", flat=True).first() or 0


def calls_admit(*, tenant: Tenant, calls: int) -> Admission:
    """Count `calls` API calls at once against the tenant's daily quota: all of them, or none and a 429.

    For work a tenant asks for in bulk through one request: each task run it submits is one call
    (tasks.services), so a batch of 700 runs costs 700 calls, not one. The same atomic admission as a
    request's (public.courtside_admit_request), without a concurrency lease: these calls hold no request
    slot. Until that function takes a count, it is called once per call inside one transaction, rolled
    back whole when the quota runs out part way.
    """
    if calls < 1:
        raise ValueError("Admit at least one call.")
    plan = tenant.plan
    call_limit = plan.api_calls_per_day if plan else None
    now = timezone.now()
    inside = connection.in_atomic_block
    with transaction.atomic(), raw_cursor() as cursor:
        if inside:  # the function relaxes its transaction's commit: not the caller's, which we are part of
            cursor.execute("SELECT current_setting('synchronous_commit')")
            (commit_setting,) = cursor.fetchone()
        # One call of the function per call admitted, in order. `n.i - n.i` ties the function to each row:
        # with arguments independent of the row PostgreSQL would call it once and reuse its answer.
        cursor.execute(
            "SELECT count(*) FILTER (WHERE a.outcome = 'ok'), max(a.calls) FROM generate_series(1, %s) AS n(i), "
            "LATERAL public.courtside_admit_request(%s, %s::date + (n.i - n.i), %s, NULL, NULL, %s) AS a",
            [calls, tenant.pk, now.astimezone(dt.UTC).date(), call_limit, settings.TENANT_REQUEST_LEASE_SECONDS],
        )
        admitted, counted = cursor.fetchone()
        if admitted < calls:
            retry_after = seconds_until_utc_midnight(now)
            raise DomainError(  # leaving the atomic block rolls back the calls counted so far
                f"The {plan.name} plan allows {call_limit} API calls per UTC day, and each task run counts as one; "
                f"{calls} more do not fit today. The quota resets at midnight UTC.",
                code="daily_quota_exceeded", status=429,
                detail={"limit": call_limit, "calls": calls, "retry_after_seconds": retry_after},
                headers={"Retry-After": str(retry_after)},
            )
        if inside:
            cursor.execute("SELECT set_config('synchronous_commit', %s, true)", [commit_setting])
    return Admission(token=None, limit=call_limit, calls=counted)
