"""The operator's usage ledger (UsageDay), read-only."""

from __future__ import annotations

from django.contrib import admin
from django.template.defaultfilters import filesizeformat

from core.admin import operator_site
from tenants.admin.base import ReadOnlyAdmin
from tenants.models import UsageDay


@admin.register(UsageDay, site=operator_site)
class UsageDayAdmin(ReadOnlyAdmin):
    list_display = ("date", "tenant", "api_calls", "refused_display", "peak_concurrency", "storage_display", "users",
                    "saved_models")
    # No filter by tenant: RelatedOnlyFieldListFilter lists every tenant of the ledger in the sidebar (a
    # DISTINCT over every row and 10,000 links at 10,000 tenants); the search box finds a tenant's rows.
    list_filter = ("date",)
    show_full_result_count = False  # one COUNT per page, not a second one over the whole ledger
    list_select_related = ("tenant",)
    search_fields = ("tenant__name", "tenant__schema_name")
    date_hierarchy = "date"

    @admin.display(description="storage", ordering="storage_bytes")
    def storage_display(self, row):
        return filesizeformat(row.storage_bytes)

    @admin.display(description="refused (quota · burst · concurrency)")
    def refused_display(self, row):
        return f"{row.refused_daily_quota} · {row.refused_burst} · {row.refused_concurrency}"
