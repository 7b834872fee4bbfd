from django.contrib import admin

from backoffice.admin_sites import operator_site
from tenants.models import Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant, site=operator_site)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "schema_name", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "schema_name", "domains__domain")
    inlines = [DomainInline]

    def get_readonly_fields(self, request, obj=None):
        return ("schema_name", "created_at") if obj else ("created_at",)
