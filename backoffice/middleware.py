"""Tenant resolution that answers unknown hosts with the JSON error shape."""

from django.http import JsonResponse
from django_tenants.middleware.main import TenantMainMiddleware


class JsonTenantMainMiddleware(TenantMainMiddleware):
    """django-tenants' host lookup; an unknown host gets a JSON 404, never the public site."""

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
