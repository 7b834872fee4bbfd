"""django-q2 task functions of the tenants app: thin callers of services."""

from tenants import provisioning, services


def pool_refill():
    return provisioning.pool_refill()


def usage_refresh_all():
    return services.tenant_usage_refresh()
