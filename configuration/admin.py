"""Operator admin (entries, effective view, schemas, history with diff and rollback) and tenant admin (own overrides).

Thin: forms call services.entry_check in clean() so a refused value is a form
error, and saves go through the services. Secret values never reach the HTML:
lists and diffs show the mask, and a secret's edit form starts empty
("leave empty to keep").
"""

from __future__ import annotations

import difflib
import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from configuration import admin_experiments, services, stack  # noqa: F401  (admin_experiments: registers its page)
from configuration.conf import PUBLIC, config
from configuration.models import ConfigChange, ConfigEntry, ConfigSchema, TenantOverride
from core.admin import ServiceErrorFormMixin, operator_site, tenant_site
from core.masking import MASK
from tenants.models import Tenant

KEEP_SECRET_HELP = "Secret: the current value is not shown. Leave empty to keep it."


def _shown(key: str, value, *, secret: bool, scope: str = PUBLIC):
    if secret and value not in (None, ""):
        return MASK
    return config.mask(key, value, tenant=scope)


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


class EntryForm(ServiceErrorFormMixin, forms.ModelForm):
    """Key, layer and a JSON value; a secret's current value is never put in the form."""

    service_error_field = "value"  # a refusal that names no field is about the value

    value = forms.JSONField(required=False, help_text="Any JSON: 30, true, \"text\", [1, 2], {\"a\": 1}.")
    tenant_admin = False

    class Meta:
        model = ConfigEntry
        fields = ("key", "tenant", "value", "secret")

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        instance = self.instance
        self.keeps_secret = bool(instance.pk and (instance.secret or config.is_secret(instance.key)))
        if self.keeps_secret:
            self.initial["value"] = None
            self.fields["value"].help_text = KEEP_SECRET_HELP
            self.fields["value"].widget.attrs["placeholder"] = MASK
        elif instance.pk:
            # Secrets inside the value (a password in a list of dicts) show masked; a mask sent back keeps them.
            scope = instance.tenant.schema_name if instance.tenant_id else PUBLIC
            masked = config.mask(instance.key, instance.value, tenant=scope)
            self.initial["value"] = masked
            if masked != instance.value:
                self.fields["value"].help_text = f"Secrets inside are shown as {MASK}; leave them so to keep them."

    def layer_tenant(self):
        if "tenant" in self.cleaned_data:
            return self.cleaned_data["tenant"]
        return self.instance.tenant if self.instance.pk else None  # read-only once saved

    def clean(self):
        cleaned = super().clean()
        key = cleaned.get("key") or self.instance.key
        if not key:
            return cleaned
        if self.keeps_secret and cleaned.get("value") in (None, ""):
            cleaned["value"] = self.instance.value  # empty means keep
        with self.service_errors():
            services.entry_check(key=key, value=cleaned.get("value"), tenant=self.layer_tenant(),
                                 tenant_admin=self.tenant_admin)
        return cleaned

    def validate_unique(self):
        # The services decide: an existing key in the same layer is an update, not a duplicate.
        pass


class EntryAdminBase(admin.ModelAdmin):
    form = EntryForm
    search_fields = ("key",)
    list_per_page = 100

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)

        class RequestForm(form):
            def __init__(self, *args, **inner):
                super().__init__(*args, request=request, **inner)

        return RequestForm

    def get_readonly_fields(self, request, obj=None):
        audit = ("version", "updated_at", "updated_by")
        return ("key", "tenant", *audit) if obj else audit

    @admin.display(description="value")
    def shown_value(self, obj):
        return _json(_shown(obj.key, obj.value, secret=obj.secret, scope=self._scope(obj)))

    def _scope(self, obj):
        return obj.tenant.schema_name if obj.tenant_id else PUBLIC

    def _changed_by(self, request):
        return services.actor(request.user, schema_name=getattr(getattr(request, "tenant", None), "schema_name",
                                                                PUBLIC))

    def save_model(self, request, obj, form, change):
        saved = services.entry_set(
            key=obj.key, value=form.cleaned_data.get("value"), tenant=self.entry_tenant(request, obj),
            secret=form.cleaned_data.get("secret"), changed_by=self._changed_by(request), source=self.source,
            tenant_admin=self.tenant_admin,
        )
        obj.pk, obj.version = saved.pk, saved.version

    def delete_model(self, request, obj):
        services.entry_delete(key=obj.key, tenant=obj.tenant, changed_by=self._changed_by(request),
                              source=self.source, tenant_admin=self.tenant_admin)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_model(request, obj)

    def entry_tenant(self, request, obj):
        return obj.tenant


@admin.register(ConfigEntry, site=operator_site)
class ConfigEntryAdmin(EntryAdminBase):
    list_display = ("key", "layer_name", "shown_value", "effective_value", "winning_layer", "version", "updated_at",
                    "updated_by")
    list_filter = (("tenant", admin.RelatedOnlyFieldListFilter),)
    source = "admin"
    tenant_admin = False
    change_list_template = "admin/configuration/configentry/change_list.html"

    @admin.display(description="layer")
    def layer_name(self, obj):
        return f"tenant {obj.tenant.schema_name}" if obj.tenant_id else "database"

    @admin.display(description="effective value")
    def effective_value(self, obj):
        return _json(config.explain(obj.key, tenant=self._scope(obj))["value"])

    @admin.display(description="winning layer")
    def winning_layer(self, obj):
        return config.source_of(obj.key, tenant=self._scope(obj))

    def get_urls(self):
        return [
            path("effective/", self.admin_site.admin_view(self.effective_view), name="configuration_effective"),
            *super().get_urls(),
        ]

    def effective_view(self, request):
        """Every key of a view with its effective value (masked) and the layer that won."""
        schema = request.GET.get("tenant") or PUBLIC
        tenant = get_object_or_404(Tenant, schema_name=schema) if schema != PUBLIC else None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Effective configuration ({schema})",
            "opts": self.model._meta,
            "rows": [{**row, "value": _json(row["value"])} for row in config.effective(tenant=schema, masked=True)],
            "tenants": Tenant.objects.exclude(schema_name=PUBLIC).order_by("schema_name"),
            "selected": tenant.schema_name if tenant else PUBLIC,
            "errors": config.validate(tenant=schema),
            "layers": [(layer.name, layer.priority) for layer in stack.layers_of(schema)],
            "schemas": [
                {"key": key, "origin": spec.get("origin"), "secret": bool(spec.get("secret")),
                 "tenant_editable": bool(spec.get("tenant_editable")), "schema": _json(spec.get("schema", {}))}
                for key, spec in sorted(config.schemas().items())
            ],
        }
        return TemplateResponse(request, "admin/configuration/effective.html", context)


@admin.register(TenantOverride, site=tenant_site)
class TenantOverrideAdmin(EntryAdminBase):
    """A tenant's own overrides, limited to the keys the operator made tenant-editable."""

    list_display = ("key", "shown_value", "effective_value", "version", "updated_at", "updated_by")
    source = "tenant-admin"
    tenant_admin = True

    def get_queryset(self, request):
        return super().get_queryset(request).filter(tenant=request.tenant)

    def get_fields(self, request, obj=None):
        return ("key", "value", "version", "updated_at", "updated_by") if obj else ("key", "value")

    def get_readonly_fields(self, request, obj=None):
        return ("key", "version", "updated_at", "updated_by") if obj else ()

    def get_form(self, request, obj=None, **kwargs):
        kwargs["fields"] = ("key", "value") if obj is None else ("value",)
        form = super().get_form(request, obj, **kwargs)

        editable = ", ".join(sorted(k for k, spec in config.schemas().items() if spec.get("tenant_editable")))

        class TenantForm(form):
            tenant_admin = True

            def __init__(self, *args, **inner):
                super().__init__(*args, **inner)
                if "key" in self.fields:
                    self.fields["key"].help_text = f"Keys you may override: {editable} (and keys under them)."

            def layer_tenant(self):
                return request.tenant

        return TenantForm

    def save_model(self, request, obj, form, change):
        obj.tenant = request.tenant
        super().save_model(request, obj, form, change)

    def entry_tenant(self, request, obj):
        return request.tenant

    @admin.display(description="effective value")
    def effective_value(self, obj):
        return _json(config.explain(obj.key, tenant=obj.tenant.schema_name)["value"])


def _diff(change: ConfigChange) -> str:
    secret = change.secret or config.is_secret(change.key)

    def text(value, exists):
        if not exists:
            return []
        scope = change.tenant.schema_name if change.tenant_id else PUBLIC
        shown = MASK if secret and value not in (None, "") else config.mask(change.key, value, tenant=scope)
        return json.dumps(shown, indent=2, sort_keys=True, ensure_ascii=False).splitlines()

    lines = difflib.unified_diff(
        text(change.old_value, change.existed_before), text(change.new_value, change.exists_after),
        fromfile=f"{change.key} before", tofile=f"{change.key} v{change.version}", lineterm="",
    )
    return "\n".join(lines) or "(no difference)"


@admin.register(ConfigChange, site=operator_site)
class ConfigChangeAdmin(admin.ModelAdmin):
    list_display = ("changed_at", "key", "layer_name", "version", "action", "shown_old", "shown_new", "source",
                    "changed_by")
    list_filter = ("action", "source", ("tenant", admin.RelatedOnlyFieldListFilter),
                   ("changed_at", admin.DateFieldListFilter))
    search_fields = ("key", "changed_by")
    fields = ("key", "tenant", "version", "action", "source", "changed_by", "changed_at", "diff")
    readonly_fields = fields
    change_form_template = "admin/configuration/configchange/change_form.html"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # history is append-only

    @admin.display(description="layer")
    def layer_name(self, obj):
        return f"tenant {obj.tenant.schema_name}" if obj.tenant_id else "database"

    def _shown(self, obj, value, exists):
        if not exists:
            return "(none)"
        return _json(_shown(obj.key, value, secret=obj.secret))

    @admin.display(description="old value")
    def shown_old(self, obj):
        return self._shown(obj, obj.old_value, obj.existed_before)

    @admin.display(description="new value")
    def shown_new(self, obj):
        return self._shown(obj, obj.new_value, obj.exists_after)

    @admin.display(description="diff")
    def diff(self, obj):
        return format_html("<pre>{}</pre>", _diff(obj))

    def get_urls(self):
        return [
            path("<int:pk>/rollback/", self.admin_site.admin_view(self.rollback_view), name="configuration_rollback"),
            *super().get_urls(),
        ]

    def rollback_view(self, request, pk):
        change = get_object_or_404(ConfigChange, pk=pk)
        back = reverse(f"{self.admin_site.name}:configuration_configchange_change", args=[pk])
        if request.method != "POST":
            return HttpResponseRedirect(back)
        allowed = request.user.has_perm("configuration.change_configentry")
        if not self.has_view_permission(request, change) or not allowed:
            messages.error(request, "You may not change configuration entries.")
            return HttpResponseRedirect(back)
        try:
            services.entry_rollback(change_id=change.pk, changed_by=services.actor(request.user), source="rollback")
        except ValidationError as exc:
            messages.error(request, f"Rollback refused: {'; '.join(exc.messages)}")
            return HttpResponseRedirect(back)
        messages.success(request, f"{change.key} restored to version {change.version}.")
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:configuration_configchange_changelist"))


class SchemaForm(ServiceErrorFormMixin, forms.ModelForm):
    class Meta:
        model = ConfigSchema
        fields = ("key", "schema", "secret", "tenant_editable", "description")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("key") and "schema" in cleaned:
            with self.service_errors():
                services.schema_check(key=cleaned["key"], schema=cleaned["schema"])
        return cleaned


@admin.register(ConfigSchema, site=operator_site)
class ConfigSchemaAdmin(admin.ModelAdmin):
    form = SchemaForm
    list_display = ("key", "secret", "tenant_editable", "description", "updated_at")
    search_fields = ("key", "description")

    def save_model(self, request, obj, form, change):
        saved = services.schema_set(key=obj.key, schema=obj.schema, secret=obj.secret,
                                    tenant_editable=obj.tenant_editable, description=obj.description)
        obj.pk = saved.pk
