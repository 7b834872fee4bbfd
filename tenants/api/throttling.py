"""Metering of the tenant API as a DRF throttle: it runs after authentication, on every view."""

from django.conf import settings
from django.db import connection
from rest_framework.throttling import BaseThrottle

from tenants import metering


class TenantQuotaThrottle(BaseThrottle):
    """Counts the call and takes a concurrency lease; over a quota it raises a JSON 429."""

    def allow_request(self, request, view):
        tenant = getattr(connection, "tenant", None)
        if tenant is None or tenant.schema_name == "public" or not settings.TENANT_METERING_ENABLED:
            return True
        admission = metering.request_admit(tenant=tenant)
        # Read by TenantApiMiddleware: headers on the response, lease released after it.
        request._request.courtside_admission = admission
        return True
