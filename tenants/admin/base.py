"""The pieces every tenant admin shares: a service-backed add view, the row-quota pre-check, read-only rows.

Thin by design: every write is a call to tenants.services, and a service's
ValidationError becomes a form error or an error message, never a 500 and
never half a write.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, transaction
from django.template.defaultfilters import filesizeformat

from core.admin import add_service_error
from tenants import quotas, services

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
