"""The MCP surface's own ledger: one row per tools/call (public schema, every tenant's).

The call itself is counted in the tenants' usage ledger (tenants.UsageDay.api_calls) by the same
admission as a REST call; this row says that it came through MCP, which tool, how long it took and
how it ended, for the operator's figures (calls, errors, p50 by tool, per tenant) and the tenant's
MCP usage page.
"""

from django.db import models


class ToolCall(models.Model):
    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Tool error"
        REFUSED = "refused", "Refused (quota, plan)"

    tenant = models.ForeignKey("tenants.Tenant", related_name="+", on_delete=models.CASCADE)
    tool = models.CharField("tool", max_length=64)
    surface = models.CharField("surface", max_length=8, default="mcp", editable=False)
    started_at = models.DateTimeField("started", db_index=True)
    duration_ms = models.FloatField("duration (ms)")
    outcome = models.CharField("outcome", max_length=8, choices=Outcome.choices)
    error_code = models.CharField("error code", max_length=64, blank=True)
    instance = models.CharField("MCP instance", max_length=128, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "MCP tool call"
        indexes = [models.Index(fields=["tenant", "started_at"], name="mcp_call_tenant_time"),
                   models.Index(fields=["tool", "started_at"], name="mcp_call_tool_time")]

    def __str__(self) -> str:
        return f"{self.tool} on {self.tenant_id} at {self.started_at:%Y-%m-%d %H:%M:%S} ({self.outcome})"


class TenantMcpUsage(ToolCall):
    """The tenant admin's view of its own MCP calls, with how to connect (a proxy: no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "MCP connection and usage"
        verbose_name_plural = "MCP connection and usage"
