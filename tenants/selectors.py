"""Reads of tenants."""

from django.db.models import QuerySet

from tenants.models import Tenant


def tenant_list() -> QuerySet[Tenant]:
    """Customer tenants, without the operator's public tenant."""
    return Tenant.objects.exclude(schema_name="public").prefetch_related("domains").order_by("name")
