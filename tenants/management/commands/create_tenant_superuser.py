from django_tenants.management.commands import create_tenant_superuser

from tenants.management.wrapped import RowQuotaRefusalsAsCommandErrors


class Command(RowQuotaRefusalsAsCommandErrors, create_tenant_superuser.Command):
    """django-tenants' create_tenant_superuser; past the plan's users quota it is a CommandError."""
