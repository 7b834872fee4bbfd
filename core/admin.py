"""What every app's admin module shares: the two admin sites, reached lazily, and service errors as form errors.

The sites themselves are project wiring (backoffice.admin_sites: MFA, branding,
read-only when locked). Apps register with them through `operator_site` and
`tenant_site` here, which resolve the instances named in
settings.COURTSIDE_ADMIN_SITES on first use, the way Django's own `admin.site`
(django.contrib.admin.sites.DefaultAdminSite) resolves AdminConfig.default_site:
so no app imports backoffice, and backoffice imports the apps.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.functional import LazyObject
from django.utils.module_loading import import_string

from core.errors import DomainError


class _ConfiguredAdminSite(LazyObject):
    """The admin site settings.COURTSIDE_ADMIN_SITES names for a role ("operator", "tenant")."""

    def __init__(self, role: str):
        self.__dict__["_role"] = role  # set before LazyObject's own attributes; never reaches the site
        super().__init__()

    def _setup(self):
        self._wrapped = import_string(settings.COURTSIDE_ADMIN_SITES[self._role])

    def __repr__(self):
        return f"<admin site {self._role!r}: {settings.COURTSIDE_ADMIN_SITES[self._role]}>"


operator_site = _ConfiguredAdminSite("operator")
tenant_site = _ConfiguredAdminSite("tenant")


class ReadOnlyAdminMixin:
    """A ModelAdmin whose rows the admin only shows: what writes them is a process of the product, not a form."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _DryRun(Exception):
    pass


class ServiceErrorFormMixin:
    """A form whose input is judged by a service: the service's refusal becomes form errors.

    The one way the admin turns a service error into what the user sees: a ValidationError's field
    errors go on their fields (when the form has them), the rest on the form (or on
    `service_error_field` when the form names one); a DomainError's message goes on the form.
    No rule is copied into the form: the service stays the only judge of its input.
    """

    service_error_field: str | None = None  # where messages not tied to a field go; None: the whole form

    def add_service_error(self, error: ValidationError | DomainError) -> None:
        add_service_error(self, error, field=self.service_error_field)

    @contextmanager
    def service_errors(self):
        """Run a service call; its refusal (ValidationError or DomainError) becomes form errors."""
        try:
            yield
        except (ValidationError, DomainError) as error:
            self.add_service_error(error)

    def service_dry_run(self, call) -> None:
        """Run a service call in a savepoint that is always rolled back, to learn its refusals as form errors.

        For ModelAdmin forms: the admin re-renders the form with the user's input and the reasons instead of
        losing them; save_model then makes the same call for real.
        """
        with self.service_errors():
            try:
                with transaction.atomic():
                    call()
                    raise _DryRun
            except _DryRun:
                pass


def add_service_error(form, error: ValidationError | DomainError, *, field: str | None = None) -> None:
    """What ServiceErrorFormMixin does, for a form whose class does not mix it in (a library's form).

    Field errors on their fields when the form has them, the rest on `field` (None: the whole form).
    """
    if isinstance(error, DomainError):
        form.add_error(None, str(error))
    elif hasattr(error, "error_dict"):
        for name, messages in error.message_dict.items():
            form.add_error(name if name in form.fields else None, messages)
    else:
        form.add_error(field, error.messages)
