"""Admission: the one module that lets tenant work in (API calls, leases, anonymous limits) and lets it out.

One SQL call per authenticated tenant API request (public.courtside_admit_request, tenants.0009) takes
a concurrency lease and counts the call against the day and the minute atomically in PostgreSQL; a
second releases the lease. See that function for why this cannot race. Anonymous requests (the OpenAPI
schema and the docs page need no key) never touch a tenant's quota: they are counted per client address
and host by public.courtside_admit_anonymous, also one atomic statement. The limits are the plan's, read
through the quota registry (tenants.quotas).

The API (stable; the MCP server and any other entry point admit through it):

    admit(*, tenant, authenticated: bool, address: str = "", surface: str = "rest") -> Admission | None
        Let one unit of work in, or raise a 429 DomainError (Retry-After and X-RateLimit-* in its
        headers). Authenticated work on a tenant spends its quotas and takes a lease (an Admission);
        anonymous work spends only its address's allowance (None). Inside a `scope()` the admission is
        held by the scope, which releases it. `surface` ("rest" or "mcp", SURFACES) is recorded on the
        ledger row in the same upsert (UsageDay.mcp_calls). A plan with an overage price
        (Plan.overage_allowed) admits calls past its daily quota; they are billed (tenants.statements).
    release(admission: Admission | None) -> None           lets a lease go (None: nothing to do)
    admitted(*, tenant, authenticated, address="", surface="rest")  context manager: admit, yield the Admission, release
    scope() -> Scope                                        context manager around one request: holds what
                                                            admit() took, releases it at the end whatever
                                                            happens; Scope.headers(tenant) gives the
                                                            X-RateLimit-* headers of the response
    calls_admit(*, tenant, calls: int, surface="rest", held=None)
                                                            bulk: `calls` calls against the day, all or none
                                                            (a batch of task runs); no lease, no burst window;
                                                            `held` (Held): a count of the caller's checked in
                                                            the same statement first (the task-run cap)
    Admission.headers() -> dict                             X-RateLimit-Limit / X-RateLimit-Remaining

In the request path it is called from one place each way: tenants.middleware.TenantApiMiddleware opens
the scope around the request (and answers its headers), and the API's throttle
(tenants.api.throttling), the first point after DRF has authenticated the caller, calls admit() once.
Nothing is handed over through request attributes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from configuration import keys
from core.db import raw_cursor
from core.errors import DomainError
from tenants import quotas
from tenants.models import Tenant, UsageDay

logger = logging.getLogger(__name__)

BURST_WINDOW_SECONDS = 60
# Where an admitted call came from; the ledger counts MCP calls (UsageDay.mcp_calls), REST is the rest.
SURFACES = ("rest", "mcp")


def _is_mcp(surface: str) -> bool:
    if surface not in SURFACES:
        raise ValueError(f"Unknown surface {surface!r}; use one of {', '.join(SURFACES)}.")
    return surface == "mcp"


def _admitted_limit(plan, call_limit: int | None) -> int | None:
    """The daily limit the admission enforces: none when the plan bills calls past its quota instead."""
    return None if plan.overage_allowed else call_limit


@dataclass(frozen=True)
class Admission:
    token: uuid.UUID | None
    limit: int | None
    calls: int

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - self.calls)

    def headers(self) -> dict[str, str]:
        return rate_limit_headers(limit=self.limit, remaining=self.remaining)


def seconds_until_utc_midnight(now: dt.datetime | None = None) -> int:
    now = (now or timezone.now()).astimezone(dt.UTC)
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return max(1, int((midnight - now).total_seconds() + 0.999))


def rate_limit_headers(*, limit: int | None, remaining: int | None) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": "unlimited" if limit is None else str(limit),
        "X-RateLimit-Remaining": "unlimited" if remaining is None else str(remaining),
    }


def request_admit(*, tenant: Tenant, surface: str = "rest") -> Admission:
    """Count one API call (day and minute) and take a concurrency lease, or raise a 429 DomainError."""
    mcp = _is_mcp(surface)
    plan = tenant.plan
    call_limit = quotas.limit(plan, "api_calls")
    concurrency_limit = quotas.limit(plan, "concurrency")
    burst_limit = keys.api_burst_limit(tenant=tenant.schema_name)
    token = uuid.uuid4() if concurrency_limit is not None else None
    now = timezone.now()
    with raw_cursor() as cursor:
        cursor.execute(
            "SELECT outcome, calls, active, retry_after"
            " FROM public.courtside_admit_request(%s, %s, %s, %s, %s, %s, %s, NULL, %s)",
            [tenant.pk, now.astimezone(dt.UTC).date(), _admitted_limit(plan, call_limit), concurrency_limit, token,
             settings.TENANT_REQUEST_LEASE_SECONDS, burst_limit, mcp],
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


@dataclass(frozen=True)
class Held:
    """A count the caller keeps beside the quota, which must stay at most `most` with `adding` more.

    `sql` is a scalar subquery naming its tables with their schema (`params` its parameters): it is read
    in the admission's own statement, and past `most` the admission is not even tried, so nothing is
    counted and `refusal(count)` is raised (the task layer's cap on a tenant's unfinished runs: a run
    the cap refuses spends no call, and the cap and the quota cost one round trip, not two).
    """

    sql: str
    params: list
    adding: int
    most: int
    refusal: Callable[[int], Exception]


# The admission's function takes its calls from the held row, so it is called only for a row that passed
# the held count's filter (a restriction on that row, by construction: no plan calls it otherwise); the
# second branch answers the count alone when it is past.
_HELD_ADMISSION = """
WITH held AS MATERIALIZED (SELECT ({held})::bigint AS count, %s::bigint AS adding, %s::integer AS calls)
SELECT held.count, admitted.outcome, admitted.calls
FROM held, LATERAL public.courtside_admit_request(%s, %s, %s, NULL, NULL, %s, NULL, held.calls, %s) AS admitted
WHERE held.count + held.adding <= %s
UNION ALL
SELECT held.count, NULL, NULL FROM held WHERE held.count + held.adding > %s
"""


def calls_admit(*, tenant: Tenant, calls: int, surface: str = "rest", held: Held | None = None) -> Admission:
    """Count `calls` API calls at once against the tenant's daily quota: all of them, or none and a 429.

    For work a tenant asks for in bulk through one request: each task run it submits is one call
    (tasks.services), so a batch of 700 runs costs 700 calls, not one. One call of the request's
    admission function with p_calls (tenants.0009): no concurrency lease (these calls hold no request
    slot) and no burst window (they are not requests). With `held`, the caller's own count is read and
    checked in the same statement first (Held).
    """
    if calls < 1:
        raise ValueError("Admit at least one call.")
    mcp = _is_mcp(surface)
    plan = tenant.plan
    call_limit = quotas.limit(plan, "api_calls")
    now = timezone.now()
    inside = connection.in_atomic_block
    with raw_cursor() as cursor:
        if inside:  # the function relaxes its transaction's commit: not the caller's, which we are part of
            cursor.execute("SELECT current_setting('synchronous_commit')")
            (commit_setting,) = cursor.fetchone()
        day, limit, lease = now.astimezone(dt.UTC).date(), _admitted_limit(plan, call_limit), \
            settings.TENANT_REQUEST_LEASE_SECONDS
        if held is None:
            cursor.execute(
                "SELECT outcome, calls FROM public.courtside_admit_request(%s, %s, %s, NULL, NULL, %s, NULL, %s, %s)",
                [tenant.pk, day, limit, lease, calls, mcp])
            outcome, counted = cursor.fetchone()
        else:
            cursor.execute(_HELD_ADMISSION.format(held=held.sql),
                           [*held.params, held.adding, calls, tenant.pk, day, limit, lease, mcp, held.most, held.most])
            count, outcome, counted = cursor.fetchone()
        if inside:
            cursor.execute("SELECT set_config('synchronous_commit', %s, true)", [commit_setting])
    if held is not None and outcome is None:
        raise held.refusal(count)
    if outcome != "ok":
        retry_after = seconds_until_utc_midnight(now)
        raise DomainError(
            f"The {plan.name} plan allows {call_limit} API calls per UTC day, and each task run counts as one; "
            f"{calls} more do not fit today. The quota resets at midnight UTC.",
            code="daily_quota_exceeded", status=429,
            detail={"limit": call_limit, "calls": calls, "retry_after_seconds": retry_after},
            headers={"Retry-After": str(retry_after)},
        )
    return Admission(token=None, limit=call_limit, calls=counted)


# ----------------------------------------------------------------- one admission per unit of work

# Observers of each authenticated admission's outcome, f(tenant=<schema>, outcome=...): ops.metrics registers one.
OUTCOMES = {"daily_quota_exceeded": "daily_quota", "burst_limit_exceeded": "burst",
            "concurrency_limit_exceeded": "concurrency"}
_observers: list = []


def admission_observe(callback) -> None:
    """Call `callback(tenant=<schema name>, outcome=<admitted|daily_quota|burst|concurrency>)` on every admission."""
    if callback not in _observers:
        _observers.append(callback)


def _notify(tenant: Tenant, outcome: str) -> None:
    for callback in _observers:
        try:
            callback(tenant=tenant.schema_name, outcome=outcome)
        except Exception:  # noqa: BLE001 - an observer never changes an admission
            logger.warning("An admission observer failed", exc_info=True)


def admit(*, tenant: Tenant, authenticated: bool, address: str = "", surface: str = "rest") -> Admission | None:
    """Let one unit of work in (see the module docstring); inside a scope() the scope keeps what it took."""
    if not authenticated:
        anonymous_admit(tenant=tenant, address=address)
        return None
    if tenant.schema_name == "public":  # the operator's own API spends no tenant's quota
        return None
    try:
        admission = request_admit(tenant=tenant, surface=surface)
    except DomainError as refusal:
        _notify(tenant, OUTCOMES.get(refusal.code, refusal.code))
        raise
    _notify(tenant, "admitted")
    current = _current_scope.get()
    if current is not None:
        current.hold(admission)
    return admission


def release(admission: Admission | None) -> None:
    if admission is not None:
        request_release(token=admission.token)


@contextmanager
def admitted(*, tenant: Tenant, authenticated: bool, address: str = "", surface: str = "rest"):
    """Admit one unit of work for the block and release it after, whatever happens (outside a request scope)."""
    admission = admit(tenant=tenant, authenticated=authenticated, address=address, surface=surface)
    try:
        yield admission
    finally:
        if _current_scope.get() is None:
            release(admission)


class Scope:
    """One request's admission: what admit() took during it, released when the scope ends."""

    def __init__(self):
        self.admission: Admission | None = None

    def hold(self, admission: Admission) -> None:
        if self.admission is not None:  # a second admission in one request would hold two leases
            release(self.admission)
        self.admission = admission

    def headers(self, tenant: Tenant) -> dict[str, str]:
        """X-RateLimit-* of the response: the admission's, or, when the request was refused before it
        (authentication, suspension), the day's count as it stands, counting nothing."""
        if self.admission is not None:
            return self.admission.headers()
        call_limit = quotas.limit(tenant.plan, "api_calls") if tenant.plan_id else None
        remaining = None if call_limit is None else max(0, call_limit - calls_today(tenant=tenant))
        return rate_limit_headers(limit=call_limit, remaining=remaining)


_current_scope: ContextVar[Scope | None] = ContextVar("courtside_admission_scope", default=None)


@contextmanager
def scope():
    """The admission of one request: admit() inside it is held here and released when the block ends."""
    current = Scope()
    token = _current_scope.set(current)
    try:
        yield current
    finally:
        _current_scope.reset(token)
        release(current.admission)
