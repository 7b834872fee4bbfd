"""API keys: every tenant's keys for the operator (read-only), a tenant's own keys (create, revoke)."""

from __future__ import annotations

from django.contrib import admin, messages

from core.admin import operator_site, tenant_site
from tenants import selectors, services
from tenants.admin.base import ReadOnlyAdmin, ServiceAddViewMixin
from tenants.forms import ApiKeyCreateForm
from tenants.models import ApiKey

API_KEY_FIELDS = ("name", "prefix", "scope", "created_at", "created_by", "last_used_at", "revoked_at")


@admin.register(ApiKey, site=operator_site)
class OperatorApiKeyAdmin(ReadOnlyAdmin):
    """Every tenant's keys, read-only; the secret hash is never shown."""

    list_display = ("prefix", "name", "tenant", "scope", "last_used_at", "revoked_at")
    list_filter = ("scope", ("tenant", admin.RelatedOnlyFieldListFilter), ("revoked_at", admin.EmptyFieldListFilter))
    list_select_related = ("tenant",)
    search_fields = ("prefix", "name", "tenant__schema_name")
    fields = ("tenant", *API_KEY_FIELDS)
    readonly_fields = fields


class TenantApiKeyAdmin(ServiceAddViewMixin, admin.ModelAdmin):
    """A tenant's own API keys: create (the key is shown once) and revoke; never another tenant's."""

    list_display = ("name", "prefix", "scope", "created_at", "last_used_at", "state")
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "prefix")
    fields = API_KEY_FIELDS
    readonly_fields = API_KEY_FIELDS
    add_form_class = ApiKeyCreateForm
    actions = ["revoke"]

    def get_queryset(self, request):
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.is_public:
            return ApiKey.objects.none()
        return selectors.api_keys_of(tenant=tenant)

    @admin.display(description="state")
    def state(self, key):
        return "active" if key.is_active else "revoked"

    def has_change_permission(self, request, obj=None):
        return False  # a key is immutable: revoke it and create another

    def has_delete_permission(self, request, obj=None):
        return False  # revoked keys stay listed, with their last use, for audit

    def create_from_form(self, request, form):
        key, raw_key = services.api_key_create(
            tenant=request.tenant, name=form.cleaned_data["name"], scope=form.cleaned_data["scope"],
            created_by=request.user.get_username(),
        )
        return key, (
            f"Created the API key “{key.name}”. Copy it now, it will not be shown again: {raw_key}"
        )

    @admin.action(description="Revoke selected keys", permissions=["view"])
    def revoke(self, request, queryset):
        revoked = 0
        for key in queryset:  # already limited to this tenant's keys by get_queryset
            if key.is_active:
                services.api_key_revoke(key=key)
                revoked += 1
        self.message_user(request, f"Revoked {revoked} key(s).", messages.SUCCESS)


tenant_site.register(ApiKey, TenantApiKeyAdmin)
