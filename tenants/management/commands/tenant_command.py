from django_tenants.management.commands import tenant_command

from tenants.management.wrapped import RowQuotaRefusalsAsCommandErrors


class Command(RowQuotaRefusalsAsCommandErrors, tenant_command.Command):
    """django-tenants' tenant_command; a quota refusal of the wrapped command is a CommandError."""
