"""Tenant resolution that answers unknown hosts with the JSON error shape."""

from django.http import JsonResponse
from django_tenants.middleware.main import TenantMainMiddleware


class JsonTenantMainMiddleware(TenantMainMiddleware):
    """django-tenants' host lookup; an unknown host gets a JSON 404, never the public site."""

    def get_tenant(self, domain_model, hostname):
        # The plan comes along: quotas are read on every request, so a plan change applies at once.
        return domain_model.objects.select_related("tenant__plan").get(domain=hostname).tenant

    def no_tenant_found(self, request, hostname):
        return JsonResponse(
            {
                "error": {
                    "code": "unknown_host",
                    "message": f"No Courtside site is served at {hostname!r}.",
                    "detail": {"host": hostname},
                }
            },
            status=404,
        )
