from django_tenants.management.commands import all_tenants_command

from tenants.management.wrapped import RowQuotaRefusalsAsCommandErrors


class Command(RowQuotaRefusalsAsCommandErrors, all_tenants_command.Command):
    """django-tenants' all_tenants_command; a quota refusal of the wrapped command is a CommandError."""
