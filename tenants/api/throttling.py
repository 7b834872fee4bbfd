"""Metering of the API as a DRF throttle: it runs after authentication and permissions, on every view."""

from django.conf import settings
from django.db import connection
from rest_framework.renderers import JSONRenderer
from rest_framework.throttling import BaseThrottle

from core.errors import DomainError
from tenants import metering


class TenantQuotaThrottle(BaseThrottle):
    """Authenticated tenant calls spend the tenant's quotas; anonymous requests only their address's allowance.

    Over a limit it raises a JSON 429 with Retry-After. Anonymous requests reach
    a throttle only on views open to them (the OpenAPI schema, the docs page):
    every other view refuses them first.
    """

    def allow_request(self, request, view):
        tenant = getattr(connection, "tenant", None)
        if tenant is None or not settings.TENANT_METERING_ENABLED:
            return True
        try:
            self._admit(request, tenant)
        except DomainError:
            # A refusal is the API's JSON error shape even on a view that renders HTML (the docs page).
            request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
            raise
        return True

    @staticmethod
    def _admit(request, tenant) -> None:
        # The one admission of the request; the request's scope (TenantApiMiddleware) holds and releases it.
        user = getattr(request, "user", None)
        metering.admit(tenant=tenant, authenticated=bool(user is not None and user.is_authenticated),
                       address=request.META.get("REMOTE_ADDR", ""))


class DocumentationThrottle(TenantQuotaThrottle):
    """The API's own documents (OpenAPI schema, docs page): reading them never spends a tenant's quota.

    An anonymous reader still has its address's per-minute allowance (anonymous.rate_limit_per_minute);
    an authenticated one reads them freely.
    """

    @staticmethod
    def _admit(request, tenant) -> None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            metering.anonymous_admit(tenant=tenant, address=request.META.get("REMOTE_ADDR", ""))
