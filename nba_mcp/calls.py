"""One MCP tools/call: plan check, admission (the REST API's), the tool in the tenant's schema, release, ledger.

All of it runs in one worker thread (nba_mcp.tenancy.in_schema): the same atomic admission as a
REST call (tenants.metering.admit / release, the one admission API: daily quota, burst limit, a
concurrency lease held until the tool has answered), so a tenant's MCP and REST calls share one quota and one ledger row
per day (tenants.UsageDay.api_calls); the ToolCall row says the call came through MCP.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from configuration import keys
from core.errors import DomainError
from nba_mcp.models import ToolCall
from nba_mcp.tenancy import Principal
from tenants import metering

logger = logging.getLogger("courtside.mcp")

# Which quota each of the admission's refusals is about (the MCP error's detail.quota).
QUOTA_OF_REFUSAL = {
    "daily_quota_exceeded": "api_calls_per_day",
    "burst_limit_exceeded": "api.rate_limit_per_minute",
    "concurrency_limit_exceeded": "max_concurrent_requests",
}


@dataclass
class Outcome:
    """What one call answered: data, or an error in the JSON error shape (code, message, detail)."""

    data: dict | None = None
    code: str = ""
    message: str = ""
    detail: dict = field(default_factory=dict)
    refused: bool = False

    @property
    def ok(self) -> bool:
        return self.data is not None

    def error_body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "detail": self.detail}}


def allowed_tools(principal: Principal, every_tool: list[str]) -> list[str]:
    """The tools the tenant's plan may use now (mcp.plan_tools, read live)."""
    plan = principal.tenant.plan.code if principal.tenant.plan_id else None
    allowed = keys.mcp_plan_tools(plan=plan, tenant=principal.schema_name)
    return [name for name in every_tool if allowed is None or name in allowed]


def _refusal_detail(error: DomainError) -> dict:
    detail = dict(error.detail)
    retry = detail.get("retry_after_seconds")
    detail["quota"] = QUOTA_OF_REFUSAL.get(error.code, error.code)
    if retry is not None:
        detail["resets_at"] = (timezone.now() + dt.timedelta(seconds=retry)).astimezone(dt.UTC).isoformat()
    return detail


class CallLog:
    """ToolCall rows written in batches by a thread of their own: a call's answer never waits for its row.

    `flush()` writes what is pending (one INSERT); the thread flushes every FLUSH_EVERY seconds, and
    mcp_serve flushes at a clean stop. A killed process loses at most that fraction of a second of rows
    (the figures), never a count of the ledger (tenants.UsageDay, counted by the admission itself).
    """

    FLUSH_EVERY = 0.5

    def __init__(self):
        self._pending: list[ToolCall] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, row: ToolCall) -> None:
        with self._lock:
            self._pending.append(row)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mcp-call-log", daemon=True)
                self._thread.start()

    def flush(self) -> int:
        with self._lock:
            rows, self._pending = self._pending, []
        if rows:
            try:
                with schema_context("public"):
                    ToolCall.objects.bulk_create(rows)
            except Exception:  # noqa: BLE001 - the answers went out; the figures miss these calls
                logger.warning("%d MCP calls not recorded", len(rows), exc_info=True)
                connection.close()
        return len(rows)

    def _run(self) -> None:
        while True:
            time.sleep(self.FLUSH_EVERY)
            self.flush()
            connection.close_if_unusable_or_obsolete()


call_log = CallLog()


def _record(principal: Principal, tool: str, started: dt.datetime, elapsed: float, outcome: Outcome,
            instance: str) -> None:
    call_log.add(ToolCall(
        tenant_id=principal.tenant.pk, tool=tool, started_at=started, duration_ms=elapsed * 1000.0,
        outcome=ToolCall.Outcome.OK if outcome.ok else (
            ToolCall.Outcome.REFUSED if outcome.refused else ToolCall.Outcome.ERROR),
        error_code=outcome.code[:64], instance=instance[:128]))


def tool_call(*, principal: Principal, tool: str, every_tool: list[str], work: Callable[..., dict],
              arguments: dict, instance: str = "") -> Outcome:
    """Run one tools/call for `principal` (call in a worker thread, see tenancy.in_schema)."""
    started, clock = timezone.now(), time.perf_counter()
    connection.set_schema_to_public()
    outcome = Outcome()
    admission = None
    try:
        if tool not in allowed_tools(principal, every_tool):
            plan = principal.tenant.plan.name if principal.tenant.plan_id else "current"
            outcome = Outcome(code="tool_not_in_plan", refused=True, detail={"tool": tool, "plan": plan},
                              message=f"The {plan} plan does not include the {tool} tool.")
            return outcome
        if settings.TENANT_METERING_ENABLED:
            try:
                admission = metering.admit(tenant=principal.tenant, authenticated=True, surface="mcp")
            except DomainError as error:
                outcome = Outcome(code=error.code, message=error.message, detail=_refusal_detail(error),
                                  refused=True)
                return outcome
        if "limit" in arguments:
            cap = keys.mcp_max_results(tenant=principal.schema_name)
            arguments = {**arguments, "limit": min(arguments["limit"] or cap, cap)}
        try:
            with schema_context(principal.schema_name):
                outcome = Outcome(data=work(**arguments))
        except DomainError as error:
            outcome = Outcome(code=error.code, message=error.message, detail=error.detail)
        except Exception:  # noqa: BLE001 - the caller gets a tool error, the log the traceback
            logger.exception("MCP tool %s failed on %s", tool, principal.schema_name)
            outcome = Outcome(code="internal_error", message=f"The {tool} tool failed; it has been logged.")
        return outcome
    finally:
        connection.set_schema_to_public()
        if admission is not None:
            try:
                metering.release(admission)
            except Exception:  # noqa: BLE001 - the lease expires by itself (TENANT_REQUEST_LEASE_SECONDS)
                logger.warning("Lease of an MCP call on %s not released", principal.schema_name, exc_info=True)
        _record(principal, tool, started, time.perf_counter() - clock, outcome, instance)
