"""Admin of tenants: the operator's (all tenants, plans, usage, keys) and the tenant's own API keys.

Thin by design: every write is a call to tenants.services, and a service's
ValidationError becomes a form error or an error message, never a 500 and
never half a write.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, transaction
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from core import charts
from core.admin import add_service_error, operator_site, tenant_site
from tenants import billing, quotas, selectors, services
from tenants.forms import (
    ApiKeyCreateForm,
    PlanChangeForm,
    PlanForm,
    TenantBrandingForm,
    TenantCreateForm,
)
from tenants.models import ApiKey, Domain, Plan, Tenant, UsageDay

UNLIMITED = quotas.UNLIMITED


def _quota(value, *, as_bytes: bool = False) -> str:
    if value is None:
        return UNLIMITED
    return filesizeformat(value) if as_bytes else f"{value:,}"


def _errors(error: ValidationError) -> str:
    return "; ".join(error.messages)


class ServiceAddViewMixin:
    """An add view whose save is a service call.

    Django's add view validates the form, then saves; an error raised by the
    save cannot reach the form any more. Here the service runs inside a
    savepoint and its ValidationError is put back on the form, so the
    operator sees what to fix and the database holds nothing of the attempt.
    """

    add_form_class = None
    add_fieldsets = None

    def get_add_form(self, request, data=None, files=None):
        return self.add_form_class(data, files)

    def create_from_form(self, request, form):
        """Call the service; return (object, success message). Raise ValidationError on bad input."""
        raise NotImplementedError

    def response_created(self, request, obj):
        return self.response_post_save_add(request, obj)

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            form = self.get_add_form(request, request.POST, request.FILES)
            if form.is_valid():
                try:
                    with transaction.atomic():
                        obj, message = self.create_from_form(request, form)
                except ValidationError as error:
                    add_service_error(form, error)
                else:
                    self.log_addition(request, obj, [{"added": {}}])
                    self.message_user(request, message, messages.SUCCESS)
                    return self.response_created(request, obj)
        else:
            form = self.get_add_form(request)
        fieldsets = self.add_fieldsets or [(None, {"fields": list(form.fields)})]
        adminform = helpers.AdminForm(form, fieldsets, {}, model_admin=self)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Add {self.opts.verbose_name}",
            "subtitle": None,
            "adminform": adminform,
            "object_id": None,
            "original": None,
            "is_popup": False,
            "to_field": None,
            "media": self.media + adminform.media,
            "inline_admin_formsets": [],
            "errors": helpers.AdminErrorList(form, []),
            "preserved_filters": self.get_preserved_filters(request),
            **(extra_context or {}),
        }
        return self.render_change_form(request, context, add=True, form_url=form_url)


class RowQuotaAddMixin(ServiceAddViewMixin):
    """Add view of a tenant row that a plan quota counts (users, saved models).

    The pre-check gives the usual case a clear message before any write. The
    database trigger (SQLSTATE CQ001, public.courtside_enforce_row_quota) stays
    the authority, since two admins can pass the pre-check at once; its refusal
    becomes the same kind of form error.
    """

    quota = ""  # the ROWS kind of tenants.quotas, e.g. "users"

    def create_from_form(self, request, form):
        plan = request.tenant.plan
        if quotas.limit(plan, self.quota) is not None:
            refusal = quotas.row_quota_refusal(plan=plan, name=self.quota, count=self.model._default_manager.count())
            if refusal:
                raise ValidationError(f"{refusal} Remove one or move to a larger plan.", code="quota_exceeded")
        obj = self.create_row(request, form)
        return obj, f"Added the {self.opts.verbose_name} “{obj}”."

    def create_row(self, request, form):
        """The write; a service call where the app has one. The trigger's refusal becomes a ValidationError."""
        try:
            return form.save()
        except DatabaseError as error:
            refusal = services.quota_error_from(error)
            if refusal is None:
                raise
            raise refusal from error


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by the system (the usage ledger, keys seen by the operator)."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# ------------------------------------------------------------------ tenants

class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant, site=operator_site)
class TenantAdmin(ServiceAddViewMixin, admin.ModelAdmin):
    list_display = ("name", "schema_name", "plan", "status", "calls_today_display", "storage_display", "created_at")
    list_filter = ("plan", "status")
    list_select_related = ("plan",)
    search_fields = ("name", "schema_name", "domains__domain")
    inlines = [DomainInline]
    form = TenantBrandingForm
    add_form_class = TenantCreateForm
    add_fieldsets = [
        (None, {"fields": ["name", "schema_name", "plan", "domain"]}),
        ("First tenant admin", {"fields": ["admin_email", "admin_password"]}),
    ]
    readonly_fields = (
        "schema_name", "status", "plan", "created_at", "calls_today_display", "storage_display",
        "storage_measured_at", "usage_charts", "plan_history", "statement_link",
    )
    fieldsets = [
        (None, {"fields": ["name", "schema_name", "status", "plan", "created_at"]}),
        ("Usage", {"fields": ["calls_today_display", "storage_display", "storage_measured_at", "usage_charts"]}),
        ("Branding", {"fields": ["display_name", "logo", "primary_color", "support_email"],
                      "description": "Shown on the tenant's admin and API docs."}),
        ("Plan history", {"fields": ["plan_history", "statement_link"]}),
    ]
    actions = ["suspend", "reactivate", "change_plan", "refresh_usage", "delete_tenants"]

    def get_queryset(self, request):
        return selectors.tenant_list_with_usage()

    def get_inlines(self, request, obj):
        return self.inlines if obj else []

    def get_urls(self):
        return [path("<int:object_id>/statement/", self.admin_site.admin_view(self.statement_view),
                     name="tenants_tenant_statement"), *super().get_urls()]

    def statement_view(self, request, object_id):
        """The tenant's statement for ?month=YYYY-MM (this month by default), as a page or as CSV."""
        tenant = self.get_object(request, str(object_id))
        if tenant is None or not self.has_view_permission(request, tenant):
            raise Http404("No such tenant.")
        month = request.GET.get("month") or timezone.now().strftime("%Y-%m")
        try:
            statement = selectors.tenant_statement(tenant=tenant, month=month)
        except ValueError as error:
            messages.error(request, str(error))
            statement = selectors.tenant_statement(tenant=tenant, month=timezone.now().strftime("%Y-%m"))
        money = billing.format_money
        if request.GET.get("format") == "csv":
            response = HttpResponse(billing.statement_csv(statement), content_type="text/csv")
            response["Content-Disposition"] = f'attachment; filename="statement-{tenant.schema_name}-{month}.csv"'
            return response
        first = statement.first
        previous = (first - dt.timedelta(days=1)).strftime("%Y-%m")
        following = (statement.last + dt.timedelta(days=1)).strftime("%Y-%m")
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": tenant,
            "title": f"Statement of {tenant.name}, {first:%B %Y}", "statement": statement,
            "lines": [{"line": line, "price": money(line.monthly_price_cents), "amount": money(line.amount_cents)}
                      for line in statement.lines],
            "overage_lines": [{"line": line, "price": money(line.price_cents_per_1000),
                               "amount": money(line.amount_cents)} for line in statement.overage_lines],
            "base": money(statement.base_cents), "overage": money(statement.overage_cents),
            "total": money(statement.total_cents), "currency": billing.CURRENCY,
            "previous": previous, "following": following,
        }
        return TemplateResponse(request, "admin/tenants/tenant/statement.html", context)

    @admin.display(description="statement")
    def statement_link(self, tenant):
        if tenant.pk is None:
            return "-"
        url = reverse(f"{self.admin_site.name}:tenants_tenant_statement", args=[tenant.pk])
        return format_html('<a href="{}" class="statement-link">This month\'s statement</a>', url)

    # -- columns and read-only fields

    @admin.display(description="API calls today", ordering="calls_today")
    def calls_today_display(self, tenant):
        calls = getattr(tenant, "calls_today", None)
        if calls is None:
            calls = selectors.tenant_list_with_usage().filter(pk=tenant.pk).values_list("calls_today", flat=True)[0]
        limit = quotas.limit(tenant.plan, "api_calls") if tenant.plan_id else None
        return format_html(
            '<span class="quota">{} / {}</span> {}', f"{calls:,}", _quota(limit), charts.meter(calls, limit)
        )

    @admin.display(description="storage", ordering="storage_bytes")
    def storage_display(self, tenant):
        limit = quotas.limit(tenant.plan, "storage") if tenant.plan_id else None
        return format_html(
            '<span class="quota">{} / {}</span> {}', filesizeformat(tenant.storage_bytes),
            _quota(limit, as_bytes=True), charts.meter(tenant.storage_bytes, limit),
        )

    @admin.display(description="last 30 days")
    def usage_charts(self, tenant):
        if tenant.pk is None:
            return "-"
        window = selectors.usage_window(tenant=tenant, days=30)
        plan = tenant.plan
        calls = charts.bar_chart(
            [(day.strftime("%b %d"), row.api_calls if row else None) for day, row in window],
            title="API calls per day (UTC)", color=tenant.primary_color,
            limit=quotas.limit(plan, "api_calls"),
        )
        storage = charts.bar_chart(
            [(day.strftime("%b %d"), row.storage_bytes if row else None) for day, row in window],
            title="Storage", color=tenant.primary_color, format_value=lambda v: filesizeformat(int(v)),
        )
        return format_html('<div class="usage-charts">{}<br>{}</div>', calls, storage)

    @admin.display(description="changes")
    def plan_history(self, tenant):
        if tenant.pk is None:
            return "-"
        changes = selectors.plan_changes_of(tenant=tenant)
        if not changes:
            return "No plan change recorded."
        rows = format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (c.changed_at.strftime("%Y-%m-%d %H:%M UTC"), c.from_plan or "—", c.to_plan, c.changed_by or "—")
                for c in changes
            ),
        )
        return format_html(
            '<table class="plan-history"><thead><tr><th>When</th><th>From</th><th>To</th><th>By</th></tr>'
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

    # -- add and change

    def create_from_form(self, request, form):
        tenant = services.tenant_create(**form.service_kwargs(), created_by=request.user.get_username())
        return tenant, f"Created the tenant {tenant.name} ({tenant.schema_name}) on the {tenant.plan.name} plan."

    def response_created(self, request, obj):
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:tenants_tenant_change", args=[obj.pk]))

    def save_model(self, request, obj, form, change):
        # The account name is the operator's alone; the branding goes through the same service as the
        # tenant's own branding page (plan and status have their actions).
        Tenant.objects.filter(pk=obj.pk).update(name=obj.name)
        logo = form.cleaned_data.get("logo")
        services.tenant_branding_update(
            tenant=obj, display_name=obj.display_name, primary_color=obj.primary_color,
            support_email=obj.support_email, logo=logo if logo and "logo" in form.changed_data else None,
            clear_logo=logo is False,
        )

    # -- actions

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletion always exports first, through the service
        return actions

    def _each(self, request, queryset, call, done: str) -> None:
        for tenant in queryset:
            try:
                call(tenant)
            except ValidationError as error:
                self.message_user(request, f"{tenant.name}: {_errors(error)}", messages.ERROR)
            else:
                self.message_user(request, f"{tenant.name}: {done}", messages.SUCCESS)

    @admin.action(description="Suspend selected tenants", permissions=["change"])
    def suspend(self, request, queryset):
        self._each(request, queryset, lambda t: services.tenant_suspend(tenant=t), "suspended.")

    @admin.action(description="Reactivate selected tenants", permissions=["change"])
    def reactivate(self, request, queryset):
        self._each(request, queryset, lambda t: services.tenant_reactivate(tenant=t), "reactivated.")

    @admin.action(description="Refresh usage (storage, users, models) of selected tenants", permissions=["change"])
    def refresh_usage(self, request, queryset):
        count = services.tenant_usage_refresh(tenants=list(queryset))
        self.message_user(request, f"Measured the usage of {count} tenant(s).", messages.SUCCESS)

    def _action_page(self, request, template, queryset, form, title, action):
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": self.opts,
            "tenants": list(queryset),
            "form": form,
            "action": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, template, context)

    @admin.action(description="Change plan of selected tenants…", permissions=["change"])
    def change_plan(self, request, queryset):
        form = PlanChangeForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            plan = form.cleaned_data["plan"]
            by = request.user.get_username()
            self._each(request, queryset, lambda t: services.tenant_change_plan(tenant=t, plan=plan, changed_by=by),
                       f"moved to the {plan} plan.")
            return None
        return self._action_page(request, "admin/tenants/tenant/change_plan.html", queryset, form,
                                 "Change plan", "change_plan")

    def _delete(self, request, tenants) -> tuple[int, list[str]]:
        """Delete each tenant whose schema name was typed; report the export file or the error."""
        deleted, mistakes = 0, []
        for tenant in tenants:
            typed = request.POST.get(f"confirm_{tenant.pk}", "").strip()
            try:
                path = services.tenant_delete(tenant=tenant, confirm=typed)
            except ValidationError as error:
                mistakes.append(f"{tenant.name}: {_errors(error)}")
                continue
            deleted += 1
            self.log_deletions(request, [tenant])
            self.message_user(
                request, f"Deleted {tenant.name} ({tenant.schema_name}); its data was exported to {path}.",
                messages.SUCCESS,
            )
        return deleted, mistakes

    @admin.action(description="Delete selected tenants (export, then drop the schema)…", permissions=["delete"])
    def delete_tenants(self, request, queryset):
        tenants = list(queryset)
        if "apply" in request.POST:
            deleted, mistakes = self._delete(request, tenants)
            for mistake in mistakes:
                self.message_user(request, mistake, messages.ERROR)
            return None
        return self._action_page(request, "admin/tenants/tenant/delete_with_export.html", tenants, None,
                                 "Delete tenants", "delete_tenants")

    def delete_view(self, request, object_id, extra_context=None):
        """The change page's Delete button: the same typed confirmation, through the service."""
        tenant = self.get_object(request, unquote(object_id))
        if tenant is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_delete_permission(request, tenant):
            raise PermissionDenied
        errors = []
        if request.method == "POST":
            deleted, errors = self._delete(request, [tenant])
            if deleted:
                return HttpResponseRedirect(reverse(f"{self.admin_site.name}:tenants_tenant_changelist"))
        response = self._action_page(request, "admin/tenants/tenant/delete_with_export.html", [tenant], None,
                                     f"Delete {tenant.name}", None)
        response.context_data["errors"] = errors
        return response


# ------------------------------------------------------------------ plans

def _quota_column(kind: quotas.QuotaKind):
    """The plan admin's column of a quota kind: its limit, or Unlimited."""

    @admin.display(description=kind.column, ordering=kind.plan_field)
    def column(plan):
        return kind.display(kind.limit(plan))

    column.__name__ = f"{kind.name}_display"
    return column


@admin.register(Plan, site=operator_site)
class PlanAdmin(admin.ModelAdmin):
    change_list_template = "admin/tenants/plan/change_list.html"
    form = PlanForm

    @admin.display(description=f"monthly price ({billing.CURRENCY})", ordering="monthly_price_cents")
    def price_display(self, plan):
        return billing.format_money(plan.monthly_price_cents)

    def get_fields(self, request, obj=None):
        return ("code", "name", *quotas.plan_limit_fields(), "monthly_price", "overage_price", "max_task_priority",
                "max_task_batch_size", "max_task_chain_length", "max_active_task_runs")

    def get_list_display(self, request):
        # One column per quota kind (tenants.quotas), then the task cluster's limits.
        return ("name", "code", *(_quota_column(kind) for kind in quotas.kinds()), "task_priority_display",
                "max_task_batch_size", "max_task_chain_length", "active_task_runs_display", "price_display")

    @admin.display(description="highest task priority", ordering="max_task_priority")
    def task_priority_display(self, plan):
        return plan.get_max_task_priority_display()

    @admin.display(description="unfinished task runs", ordering="max_active_task_runs")
    def active_task_runs_display(self, plan):
        return _quota(plan.max_active_task_runs)

    def changelist_view(self, request, extra_context=None):
        totals = selectors.plan_totals()
        chart_tenants = charts.bar_chart([(t.label, t.tenants) for t in totals], title="Tenants by plan",
                                         width=480, label_every=1)
        chart_calls = charts.bar_chart([(t.label, t.api_calls_today) for t in totals],
                                       title="API calls today (UTC) by plan", width=480, label_every=1)
        grand = {
            "tenants": sum(t.tenants for t in totals), "active": sum(t.active for t in totals),
            "suspended": sum(t.suspended for t in totals),
            "api_calls_today": sum(t.api_calls_today for t in totals),
            "storage_bytes": sum(t.storage_bytes for t in totals),
        }
        context = {
            "plan_totals": totals, "plan_grand_total": grand,
            "plan_totals_charts": mark_safe(f"{chart_tenants} {chart_calls}"),  # noqa: S308 - built by charts
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context=context)


# ------------------------------------------------------------------ usage ledger

@admin.register(UsageDay, site=operator_site)
class UsageDayAdmin(ReadOnlyAdmin):
    list_display = ("date", "tenant", "api_calls", "refused_display", "peak_concurrency", "storage_display", "users",
                    "saved_models")
    list_filter = ("date", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("tenant",)
    search_fields = ("tenant__name", "tenant__schema_name")
    date_hierarchy = "date"

    @admin.display(description="storage", ordering="storage_bytes")
    def storage_display(self, row):
        return filesizeformat(row.storage_bytes)

    @admin.display(description="refused (quota · burst · concurrency)")
    def refused_display(self, row):
        return f"{row.refused_daily_quota} · {row.refused_burst} · {row.refused_concurrency}"


# ------------------------------------------------------------------ API keys

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


# ------------------------------------------------------------------ tenant users

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
