"""django-tenants' commands that run other commands inside a tenant schema, made to report quota refusals.

`tenant_command`, `all_tenants_command` and `create_tenant_superuser` are how a
command line reaches a tenant's own tables (its users, its saved models), where
the plan's row quotas are enforced by a trigger (SQLSTATE CQ001). Whatever
command they wrap, the refusal becomes a CommandError with the plan's message
instead of a traceback. This app's commands of the same names subclass
django-tenants' with the one mixin below (the tenants app is listed before
django_tenants in INSTALLED_APPS so that its commands win).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import DatabaseError

from tenants.services import quota_error_from


@contextmanager
def row_quota_refusals_as_command_errors():
    """Turn the row-quota trigger's refusal into a CommandError carrying the plan's message."""
    try:
        yield
    except DatabaseError as error:
        refusal = quota_error_from(error)
        if refusal is None:
            raise
        raise CommandError(" ".join(refusal.messages)) from error


class RowQuotaRefusalsAsCommandErrors:
    """Mixin for a command that wraps others: a quota refusal is a CommandError on either path."""

    def execute(self, *args, **options):
        # call_command(), and the command line of wrappers that run the wrapped command from handle().
        with row_quota_refusals_as_command_errors():
            return super().execute(*args, **options)

    def run_from_argv(self, argv):
        # django-tenants hands the command line to the wrapped command's own run_from_argv(), outside
        # BaseCommand.run_from_argv()'s handler; print the CommandError as that handler would.
        try:
            with row_quota_refusals_as_command_errors():
                return super().run_from_argv(argv)
        except CommandError as error:
            self.stderr.write(f"{error.__class__.__name__}: {error}")
            sys.exit(error.returncode)
