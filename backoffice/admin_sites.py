"""Two admin sites: the operator's on the public schema, each tenant's on its own schema.

They are separate AdminSite instances so that nothing registered for the
operator (tenants, plans, the registry) can ever be reached from a tenant's
domain, even though a tenant's search_path also reaches the public schema.
"""

from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from configuration import keys
from console.dashboard import dashboard_context
from console.tenant_index import tenant_usage
from core.admin import add_service_error
from security import mfa
from security import views as mfa_views
from tenants import services
from tenants.forms import TenantSelfBrandingForm
from tenants.models import Tenant


class MfaAdminSiteMixin:
    """Two-factor authentication (django-otp) on an admin site.

    Where MFA applies to a user (a confirmed device, or a policy: operator
    superusers in production, a tenant's staff under `security.require_mfa`)
    the login asks for a code after the password, and only a session verified
    by a device has permission. Users without MFA log in as before.
    """

    def has_permission(self, request):
        return super().has_permission(request) and mfa.session_satisfies(request)

    def login(self, request, extra_context=None):
        return mfa_views.admin_login(self, request, extra_context)

    def get_urls(self):
        return [*mfa_views.urls(self), *super().get_urls()]


class OperatorAdminSite(MfaAdminSiteMixin, admin.AdminSite):
    site_header = "Courtside operator"
    site_title = "Courtside operator"
    index_title = "Run the business"
    index_template = "admin/operator_index.html"

    def index(self, request, extra_context=None):
        # The dashboard: every figure from console.selectors, each a link to its filtered list.
        return super().index(request, extra_context={"dashboard": dashboard_context(site=self.name),
                                                     **(extra_context or {})})

    def has_permission(self, request):
        tenant = getattr(request, "tenant", None)
        return super().has_permission(request) and (tenant is None or tenant.schema_name == "public")


def tenant_is_locked(request) -> bool:
    """A suspended tenant, or one over its storage quota, gets a read-only admin."""
    tenant = getattr(request, "tenant", None)
    return tenant is not None and not tenant.is_public and (tenant.is_suspended or tenant.is_over_storage)


class ReadOnlyWhenLockedMixin:
    def has_add_permission(self, request, *args):
        return not tenant_is_locked(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return not tenant_is_locked(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not tenant_is_locked(request) and super().has_delete_permission(request, obj)

    def has_view_permission(self, request, obj=None):
        # Django derives view from change; a locked tenant still reads everything it could change.
        if super().has_view_permission(request, obj):
            return True
        return tenant_is_locked(request) and request.user.has_perm(
            f"{self.opts.app_label}.change_{self.opts.model_name}"
        )


class TenantAdminSite(MfaAdminSiteMixin, admin.AdminSite):
    site_title = "Courtside"
    index_title = "Your NBA data"
    index_template = "admin/tenant_index.html"

    def each_context(self, request):
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            context["site_header"] = f"{tenant.brand_name} · Courtside"
            context["site_title"] = f"{tenant.brand_name} · Courtside"
            context["tenant_locked"] = tenant_is_locked(request)
            context["tenant_branding_editable"] = getattr(request.user, "is_superuser", False)
        return context

    def has_permission(self, request):
        tenant = getattr(request, "tenant", None)
        return super().has_permission(request) and tenant is not None and tenant.schema_name != "public"

    def index(self, request, extra_context=None):
        # The home page greets with the tenant's branding.welcome_message (its own view of the key).
        # Above the app list: the tenant's plan and usage against its quotas (console.tenant_index).
        return super().index(request, extra_context={"title": keys.welcome_message(),
                                                     "tenant_usage": tenant_usage(tenant=request.tenant),
                                                     **(extra_context or {})})

    def get_urls(self):
        return [path("branding/", self.admin_view(self.branding_view), name="tenant_branding"), *super().get_urls()]

    def branding_view(self, request):
        """The tenant's own white-label branding, for its superusers; read-only while the tenant is locked."""
        if not request.user.is_superuser:
            raise PermissionDenied
        tenant = Tenant.objects.get(pk=request.tenant.pk)  # fresh: request.tenant is the middleware's copy
        locked = tenant_is_locked(request)
        form = TenantSelfBrandingForm(request.POST or None, request.FILES or None, instance=tenant)
        if request.method == "POST" and not locked and form.is_valid():
            try:
                services.tenant_branding_update(
                    tenant=tenant, display_name=form.cleaned_data["display_name"],
                    primary_color=form.cleaned_data["primary_color"],
                    support_email=form.cleaned_data["support_email"],
                    logo=request.FILES.get("logo"), clear_logo=form.cleaned_data["logo"] is False,
                )
            except ValidationError as error:
                add_service_error(form, error)
            else:
                messages.success(request, "Branding saved.")
                return redirect(f"{self.name}:tenant_branding")
        if locked:
            for field in form.fields.values():
                field.disabled = True
        context = {**self.each_context(request), "title": "Branding", "form": form, "locked": locked,
                   "media": form.media}
        return TemplateResponse(request, "admin/tenant_branding.html", context)

    def register(self, model_or_iterable, admin_class=None, **options):
        # Every tenant ModelAdmin turns read-only while the tenant is suspended or over storage.
        base = admin_class or admin.ModelAdmin
        locked = type(base.__name__, (ReadOnlyWhenLockedMixin, base), {"__module__": base.__module__})
        super().register(model_or_iterable, locked, **options)


operator_site = OperatorAdminSite(name="operator_admin")
tenant_site = TenantAdminSite(name="tenant_admin")

operator_site.register(User, UserAdmin)  # a tenant's users: tenants.admin (the plan's user quota)
for site in (operator_site, tenant_site):
    site.register(Group, GroupAdmin)
