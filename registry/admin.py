"""Operator admin of the registry: thin, every write through registry.registration and registry.tokens."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from core.admin import ReadOnlyAdminMixin, ServiceErrorFormMixin, operator_site
from core.errors import DomainError
from core.masking import mask_value
from registry import kinds, registration, selectors, tokens
from registry.models import CheckResult, EtcdMirrorState, HealthCheck, RegistryEvent, ServiceInstance, ServiceToken


class HealthCheckInline(admin.TabularInline):
    model = HealthCheck
    extra = 0
    can_delete = False
    fields = ("name", "kind", "status", "interval", "timeout", "target", "failures_before_critical",
              "successes_before_passing", "deregister_critical_after", "last_checked_at", "history")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="target")
    def target(self, check):
        kind = kinds.get(check.kind)
        return kind.target(check) if kind is not None else "—"

    @admin.display(description="recent results (newest first)")
    def history(self, check):
        results = CheckResult.objects.filter(health_check=check).order_by("-at", "-id")[:10]
        return format_html_join(
            "", '<div title="{}">{} {} · {}</div>',
            ((r.output, r.at.strftime("%H:%M:%S"), "✔" if r.ok else "✘", r.status) for r in results),
        ) or "—"


class InstanceForm(ServiceErrorFormMixin, forms.ModelForm):
    """Registration from the admin: the service validates, its errors become form errors."""

    class Meta:
        model = ServiceInstance
        fields = ["service_id", "name", "host", "port", "tags", "metadata", "weight"]

    def _post_clean(self):
        # Validation is the service's; a unique-id clash means "update" there, not an error.
        if not self.errors:
            self.service_dry_run(lambda: _register(self.cleaned_data, instance_pk=self.instance.pk))


def _register(data: dict, *, instance_pk) -> ServiceInstance:
    return registration.service_register(
        service_id=data["service_id"], name=data["name"], host=data["host"], port=data["port"], tags=data["tags"],
        metadata=data["metadata"], weight=data["weight"],
        checks=None if instance_pk is None else [
            _check_spec(check) for check in HealthCheck.objects.filter(instance_id=instance_pk)
        ],
    )


@admin.register(ServiceInstance, site=operator_site)
class ServiceInstanceAdmin(admin.ModelAdmin):
    form = InstanceForm
    list_display = ("name", "service_id", "address_display", "status_badge", "tags_display", "weight",
                    "heartbeat_age", "source")
    list_filter = ("status", "name", "source", "maintenance")
    search_fields = ("service_id", "name", "host", "tags")
    readonly_fields = ("status", "maintenance", "source", "registered_at", "last_heartbeat", "updated_at")
    inlines = [HealthCheckInline]
    actions = ["maintenance_on", "maintenance_off", "deregister"]
    change_list_template = "admin/services/serviceinstance/change_list.html"

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else []  # checks exist once the instance does

    @admin.display(description="address")
    def address_display(self, instance):
        return instance.address

    @admin.display(description="status", ordering="status")
    def status_badge(self, instance):
        colours = {"passing": "#2e7d32", "warning": "#ef6c00", "critical": "#c62828", "maintenance": "#546e7a"}
        return format_html('<b style="color:{}">{}</b>', colours.get(instance.status, "#000"), instance.status)

    @admin.display(description="tags")
    def tags_display(self, instance):
        return ", ".join(instance.tags)

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def heartbeat_age(self, instance):
        if not instance.last_heartbeat:
            return "never"
        return f"{timesince(instance.last_heartbeat, timezone.now())} ago"

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "service_summary": list(selectors.service_summary()),
            "self_preservation": list(selectors.self_preservation_active()),
        }
        return super().changelist_view(request, extra_context=extra_context)

    def save_model(self, request, obj, form, change):
        try:
            instance = _register(form.cleaned_data, instance_pk=obj.pk if change else None)
        except (ValidationError, DomainError) as error:
            # The form's dry run passed and something changed since (a concurrent write): reported, not written.
            raise _AdminRefusal(str(error)) from error
        obj.pk = instance.pk

    def add_view(self, request, form_url="", extra_context=None):
        return self._refusal_as_message(super().add_view, request, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        return self._refusal_as_message(super().change_view, request, object_id, form_url, extra_context)

    def _refusal_as_message(self, view, request, *args):
        try:
            return view(request, *args)
        except _AdminRefusal as refusal:
            from django.http import HttpResponseRedirect

            self.message_user(request, f"Not saved: {refusal}", level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_related(self, request, form, formsets, change):
        pass  # checks are written by service_register

    def delete_model(self, request, obj):
        registration.service_deregister(service_id=obj.service_id, reason=f"admin: {request.user}")

    def delete_queryset(self, request, queryset):
        self.deregister(request, queryset)

    @admin.action(description="Put in maintenance (out of discovery)")
    def maintenance_on(self, request, queryset):
        self._maintenance(request, queryset, on=True)

    @admin.action(description="End maintenance")
    def maintenance_off(self, request, queryset):
        self._maintenance(request, queryset, on=False)

    def _maintenance(self, request, queryset, *, on: bool):
        done, refused = 0, []
        for service_id in queryset.values_list("service_id", flat=True):
            try:
                registration.maintenance_set(service_id=service_id, on=on, reason=f"admin: {request.user}")
                done += 1
            except DomainError as error:  # mirrored from Consul (set it there), or gone meanwhile
                refused.append(f"{service_id}: {error}")
        self.message_user(request, f"{done} instance(s) {'in' if on else 'back from'} maintenance.")
        for reason in refused:
            self.message_user(request, f"Not changed: {reason}", level=messages.WARNING)

    @admin.action(description="Deregister")
    def deregister(self, request, queryset):
        ids = list(queryset.values_list("service_id", flat=True))
        for service_id in ids:
            try:
                registration.service_deregister(service_id=service_id, reason=f"admin: {request.user}")
            except DomainError:
                continue  # gone meanwhile
        self.message_user(request, f"{len(ids)} instance(s) deregistered.")


class _AdminRefusal(Exception):
    pass


def _check_spec(check: HealthCheck) -> dict:
    kind = kinds.get(check.kind)
    return {
        "name": check.name, "kind": check.kind, "interval": check.interval, "timeout": check.timeout,
        "failures_before_critical": check.failures_before_critical,
        "successes_before_passing": check.successes_before_passing,
        "deregister_critical_after": check.deregister_critical_after,
        **(kind.spec_from_check(check) if kind is not None else {}),
    }


class TokenForm(ServiceErrorFormMixin, forms.ModelForm):
    rotate = forms.BooleanField(required=False, help_text="Replace the existing token of this service.")

    class Meta:
        model = ServiceToken
        fields = ["service_name"]

    def validate_unique(self):
        pass  # token_create reports an existing token itself

    def _post_clean(self):
        super()._post_clean()
        if not self.errors:
            name = self.cleaned_data.get("service_name") or self.instance.service_name  # read-only on change
            self.service_dry_run(lambda: tokens.token_create(
                service_name=name, rotate=self.cleaned_data.get("rotate", False)))


@admin.register(ServiceToken, site=operator_site)
class ServiceTokenAdmin(admin.ModelAdmin):
    form = TokenForm
    list_display = ("service_name", "token_prefix", "token_masked", "created_at")
    readonly_fields = ("token_prefix", "token_masked", "created_at")
    search_fields = ("service_name",)

    @admin.display(description="token")
    def token_masked(self, token):
        return mask_value("token", token.token_hash)

    def get_readonly_fields(self, request, obj=None):
        return ("service_name", *self.readonly_fields) if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        try:
            token, plaintext = tokens.token_create(service_name=obj.service_name, rotate=form.cleaned_data["rotate"])
        except ValidationError as error:
            raise _AdminRefusal(" ".join(error.messages)) from error
        obj.pk = token.pk
        self.message_user(
            request, format_html("Token for {}: <code>{}</code> — copy it now, it is not shown again.",
                                 token.service_name, plaintext), level=messages.WARNING,
        )

    def add_view(self, request, form_url="", extra_context=None):
        try:
            return super().add_view(request, form_url, extra_context)
        except _AdminRefusal as refusal:
            from django.http import HttpResponseRedirect

            self.message_user(request, f"Not saved: {refusal}", level=messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())


@admin.register(RegistryEvent, site=operator_site)
class RegistryEventAdmin(admin.ModelAdmin):
    list_display = ("at", "kind", "service_name", "service_id", "message")
    list_filter = ("kind", "service_name")
    search_fields = ("service_name", "service_id", "message")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(EtcdMirrorState, site=operator_site)
class EtcdMirrorStateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: the etcd mirror writes its state (registry.etcd), the page shows it (numbers as a table)."""

    list_display = ("prefix", "endpoints", "hostname", "pid", "heartbeat_at", "last_sync_at", "mirrored_out",
                    "pulled_in", "watch_revision", "reconnects", "last_error_at")

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "etcd_mirrors": selectors.etcd_mirror_states()}
        return super().changelist_view(request, extra_context=extra_context)

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]
