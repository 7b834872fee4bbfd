"""Two admin sites: the operator's on the public schema, each tenant's on its own schema.

They are separate AdminSite instances so that nothing registered for the
operator (tenants, plans, the registry) can ever be reached from a tenant's
domain, even though a tenant's search_path also reaches the public schema.
"""

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User


class OperatorAdminSite(admin.AdminSite):
    site_header = "Courtside operator"
    site_title = "Courtside operator"
    index_title = "Run the business"

    def has_permission(self, request):
        tenant = getattr(request, "tenant", None)
        return super().has_permission(request) and (tenant is None or tenant.schema_name == "public")


class TenantAdminSite(admin.AdminSite):
    site_title = "Courtside"
    index_title = "Your NBA data"

    def each_context(self, request):
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            context["site_header"] = f"{tenant.name} · Courtside"
            context["site_title"] = f"{tenant.name} · Courtside"
        return context

    def has_permission(self, request):
        tenant = getattr(request, "tenant", None)
        return super().has_permission(request) and tenant is not None and tenant.schema_name != "public"


operator_site = OperatorAdminSite(name="operator_admin")
tenant_site = TenantAdminSite(name="tenant_admin")

for site in (operator_site, tenant_site):
    site.register(User, UserAdmin)
    site.register(Group, GroupAdmin)
