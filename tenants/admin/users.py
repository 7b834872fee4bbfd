"""A tenant's users on the tenant site, stopped at the plan's user quota."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

from core.admin import tenant_site
from tenants import quotas
from tenants.admin.base import RowQuotaAddMixin


class TenantUserAdmin(UserAdmin):
    """A tenant's users; adding stops at the plan's user quota (a database trigger backs this up)."""

    def user_quota_left(self, request) -> int | None:
        allowed = quotas.limit(getattr(getattr(request, "tenant", None), "plan", None), "users")
        return None if allowed is None else allowed - User.objects.count()

    def has_add_permission(self, request):
        left = self.user_quota_left(request)
        return super().has_add_permission(request) and (left is None or left > 0)

    def changelist_view(self, request, extra_context=None):
        left = self.user_quota_left(request)
        if left is not None and left <= 0:
            plan = request.tenant.plan
            messages.warning(request, f"The {plan.name} plan allows {quotas.limit(plan, 'users')} users; "
                                      "upgrade the plan to add more.")
        return super().changelist_view(request, extra_context)


class TenantUserQuotaAdmin(RowQuotaAddMixin, TenantUserAdmin):
    """A tenant's users: "Add" disappears at the plan's quota, and a race past it is a form error, not a 500."""

    quota = "users"
    add_form_class = TenantUserAdmin.add_form


tenant_site.register(User, TenantUserQuotaAdmin)
