"""The operator's tenant admin: list, create, plan changes, suspend, branding, export and delete."""

from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.defaultfilters import filesizeformat
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core import charts
from core.admin import operator_site
from tenants import billing, quotas, selectors, services
from tenants.admin.base import ServiceAddViewMixin, _errors, _quota
from tenants.forms import PlanChangeForm, TenantBrandingForm, TenantCreateForm
from tenants.models import Domain, Tenant


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Tenant, site=operator_site)
class TenantAdmin(ServiceAddViewMixin, admin.ModelAdmin):
    list_display = ("name", "schema_name", "plan", "status", "calls_today_display", "storage_display", "created_at")
    list_filter = ("plan", "status")
    list_select_related = ("plan",)
    search_fields = ("name", "schema_name", "domains__domain")
    # One COUNT per page, not two: at 10,000 tenants a filtered list would count the whole table again.
    show_full_result_count = False
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
