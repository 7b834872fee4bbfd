"""Security in both admins: login lockouts and history (axes), MFA devices (django-otp), the audit log.

Each of these tables lives in every schema. A tenant's admin shows its own
schema's rows and nothing else; the operator's admin shows public's, and any
tenant's after choosing the site at the top of the list (kept in the session),
with a table of every site's active lockouts.
"""

from __future__ import annotations

from auditlog.admin import LogEntryAdmin
from auditlog.filters import ResourceTypeFilter
from auditlog.models import LogEntry
from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context

from core.admin import operator_site, tenant_site
from security import audit, lockout

SITE_SESSION_KEY = "courtside_security_site"


class OperatorSiteSwitchMixin:
    """Operator admin: the list, detail and delete pages run in the schema of the site the operator chose."""

    change_list_template = "security/change_list_site.html"

    def _site(self, request) -> str:
        site = request.session.get(SITE_SESSION_KEY, "public")
        return site if site in audit.audit_schemas() else "public"

    def _in_site(self, request, view, *args, **kwargs):
        with schema_context(self._site(request)):
            response = view(request, *args, **kwargs)
            if hasattr(response, "render") and not response.is_rendered:
                response.render()  # the template reads querysets: in the chosen schema too
        return response

    def changelist_view(self, request, extra_context=None):
        if "site" in request.GET:
            chosen = request.GET["site"]
            if chosen not in audit.audit_schemas():
                messages.error(request, f"No site {chosen!r}.")
            else:
                request.session[SITE_SESSION_KEY] = chosen
            query = request.GET.copy()
            del query["site"]
            return HttpResponseRedirect(f"{request.path}?{query.urlencode()}" if query else request.path)
        context = {**(extra_context or {}), "security_sites": audit.audit_schemas(),
                   "security_site": self._site(request)}
        return self._in_site(request, super().changelist_view, extra_context=context)

    def changeform_view(self, request, *args, **kwargs):
        return self._in_site(request, super().changeform_view, *args, **kwargs)

    def delete_view(self, request, *args, **kwargs):
        return self._in_site(request, super().delete_view, *args, **kwargs)

    def history_view(self, request, *args, **kwargs):
        return self._in_site(request, super().history_view, *args, **kwargs)


# ------------------------------------------------------------------ audit log

class AuditLogEntryAdmin(LogEntryAdmin):
    """Who (user or process), when, from where, what changed: old -> new, secrets masked before storage."""

    list_display = ["created", "who", "via", "remote_addr", "action", "resource_url", "msg_short"]
    list_filter = ["action", ResourceTypeFilter, "timestamp"]
    search_fields = ["object_repr", "changes", "additional_data", "actor__username", "remote_addr"]
    search_help_text = "Search the object, the changes, who (user, API key, operator) or the address."
    readonly_fields = ["created", "who", "via", "remote_addr", "resource_url", "action", "msg"]
    fieldsets = [(None, {"fields": ["created", "who", "via", "remote_addr", "resource_url"]}),
                 ("Changes", {"fields": ["action", "msg"]})]
    list_select_related = ["content_type", "actor"]

    @admin.display(description="who")
    def who(self, obj):
        data = obj.additional_data or {}
        return data.get("actor") or (obj.actor.get_username() if obj.actor_id else "system")

    @admin.display(description="via")
    def via(self, obj):
        return (obj.additional_data or {}).get("via", "")


class OperatorAuditLogEntryAdmin(OperatorSiteSwitchMixin, AuditLogEntryAdmin):
    pass


# ------------------------------------------------------------------ login lockouts and history

@admin.action(description="Clear the lockout of the selected attempts")
def clear_lockouts(modeladmin, request, queryset):
    if not request.user.has_perm("axes.delete_accessattempt"):
        raise PermissionDenied
    count = lockout.lockout_clear(attempts=queryset, cleared_by=request.user.get_username())
    modeladmin.message_user(request, f"Cleared {count} login attempt record(s): those users can log in again.")


class LockoutAdmin(AccessAttemptAdmin):
    actions = [clear_lockouts]
    # The form data axes keeps (passwords already masked by axes) stays off the list.
    list_display = ["attempt_time", "username", "ip_address", "failures_since_start", "status", "path_info"]

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # clearing goes through the audited action
        return actions


class OperatorLockoutAdmin(OperatorSiteSwitchMixin, LockoutAdmin):
    def changelist_view(self, request, extra_context=None):
        context = {**(extra_context or {}), "security_lockouts_by_site": lockout.active_lockouts_by_site(),
                   "security_lockout_limit": settings.AXES_FAILURE_LIMIT,
                   "security_cooloff_minutes": lockout.cooloff_minutes()}
        return super().changelist_view(request, extra_context=context)


class OperatorAccessLogAdmin(OperatorSiteSwitchMixin, AccessLogAdmin):
    pass


class OperatorAccessFailureLogAdmin(OperatorSiteSwitchMixin, AccessFailureLogAdmin):
    pass


# ------------------------------------------------------------------ MFA devices (a lost phone: delete the device)

class DeviceAdmin(admin.ModelAdmin):
    """Devices by user; the secret is never shown. Deleting one turns MFA off for that user (until enrolled)."""

    list_display = ["user", "name", "confirmed", "last_used_at"]
    list_filter = ["confirmed"]
    search_fields = ["user__username", "name"]
    fields = ["user", "name", "confirmed", "last_used_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class OperatorDeviceAdmin(OperatorSiteSwitchMixin, DeviceAdmin):
    pass


operator_site.register(LogEntry, OperatorAuditLogEntryAdmin)
operator_site.register(AccessAttempt, OperatorLockoutAdmin)
operator_site.register(AccessLog, OperatorAccessLogAdmin)
operator_site.register(AccessFailureLog, OperatorAccessFailureLogAdmin)
tenant_site.register(LogEntry, AuditLogEntryAdmin)
tenant_site.register(AccessAttempt, LockoutAdmin)
tenant_site.register(AccessLog, AccessLogAdmin)
tenant_site.register(AccessFailureLog, AccessFailureLogAdmin)
for model in (TOTPDevice, StaticDevice):
    operator_site.register(model, OperatorDeviceAdmin)
    tenant_site.register(model, DeviceAdmin)
