"""Admin: the operator's MCP instances and tool-call figures; a tenant's page on connecting and its usage."""

from __future__ import annotations

import datetime as dt
import json

from django.contrib import admin
from django.utils import timezone

from core.admin import ReadOnlyAdminMixin, operator_site, tenant_site
from nba_mcp import calls, selectors
from nba_mcp.models import TenantMcpUsage, ToolCall


class _ReadOnly(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("started_at", "tool", "outcome", "error_code", "duration_ms")
    list_filter = ("outcome", "tool")
    date_hierarchy = "started_at"



@admin.register(ToolCall, site=operator_site)
class ToolCallAdmin(_ReadOnly):
    list_display = ("started_at", "tenant", "tool", "outcome", "error_code", "duration_ms", "instance")
    list_filter = ("outcome", "tool", "tenant")
    list_select_related = ("tenant",)
    change_list_template = "admin/nba_mcp/toolcall/change_list.html"

    def changelist_view(self, request, extra_context=None):
        since = timezone.now() - dt.timedelta(days=1)
        extra = {"mcp_figures": list(selectors.tool_figures(since=since)[:200]), "mcp_instances": selectors.instances(),
                 "mcp_since": since}
        return super().changelist_view(request, {**(extra_context or {}), **extra})


@admin.register(TenantMcpUsage, site=tenant_site)
class TenantMcpUsageAdmin(_ReadOnly):
    change_list_template = "admin/nba_mcp/tenantmcpusage/change_list.html"

    def get_queryset(self, request):
        return super().get_queryset(request).filter(tenant=request.tenant)

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_staff

    def changelist_view(self, request, extra_context=None):
        from nba_mcp.server import TOOL_NAMES, build_server
        from nba_mcp.tenancy import Principal

        if not TOOL_NAMES:
            build_server()  # the tool list is the server's, declared once
        tenant = request.tenant
        url = selectors.connection_url(tenant=tenant)
        snippet = json.dumps({"mcpServers": {"courtside": {
            "type": "streamable-http", "url": url, "headers": {"Authorization": "Bearer <your API key>"}}}}, indent=2)
        since = timezone.now() - dt.timedelta(days=30)
        extra = {
            "mcp_url": url, "mcp_snippet": snippet,
            "mcp_tools": calls.allowed_tools(Principal(tenant=tenant, key=None), TOOL_NAMES),
            "mcp_usage": selectors.usage_by_surface(tenant=tenant),
            "mcp_figures": list(selectors.tool_figures(since=since, tenant=tenant)),
        }
        return super().changelist_view(request, {**(extra_context or {}), **extra})
