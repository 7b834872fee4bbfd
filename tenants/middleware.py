"""Guards of the tenant sites: suspension, storage quota, rate-limit headers, lease release."""

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from rest_framework.permissions import SAFE_METHODS

from backoffice.api import error_body
from tenants import metering

ADMIN_PATHS_ALWAYS_ALLOWED = ("/admin/login/", "/admin/logout/")


def _refusal(request, *, status, code, message, is_api):
    if is_api:
        return JsonResponse(error_body(code=code, message=message), status=status)
    return HttpResponse(f"<h1>Read-only</h1><p>{message}</p>", status=status)


class TenantApiMiddleware:
    """Runs after tenant resolution and authentication, around every tenant-site request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        tenant = getattr(request, "tenant", None)
        if tenant is None or tenant.schema_name == "public":
            return self.get_response(request)
        is_api = request.path.startswith("/api/v1/")
        is_admin_write = (
            request.path.startswith("/admin/")
            and request.method not in SAFE_METHODS
            and not request.path.startswith(ADMIN_PATHS_ALWAYS_ALLOWED)
        )
        refusal = None
        if tenant.is_suspended and (is_api or is_admin_write):
            refusal = _refusal(request, status=403, code="tenant_suspended", is_api=is_api,
                               message=f"{tenant.brand_name} is suspended; contact Courtside support.")
        elif tenant.is_over_storage and (is_admin_write or (is_api and request.method not in SAFE_METHODS)):
            refusal = _refusal(request, status=403, code="storage_quota_exceeded", is_api=is_api,
                               message=f"{tenant.brand_name} is over the {tenant.plan.name} plan's storage; "
                                       "reads still work, writes are refused until data is removed or the plan "
                                       "changes.")
        response = refusal or self.get_response(request)
        admission = getattr(request, "courtside_admission", None)
        if admission is not None:
            metering.request_release(token=admission.token)
            headers = metering.rate_limit_headers(limit=admission.limit, remaining=admission.remaining)
        elif not is_api or not settings.TENANT_METERING_ENABLED:
            return response
        else:  # refused before metering (authentication, suspension): report without counting
            limit = tenant.plan.api_calls_per_day if tenant.plan_id else None
            remaining = None if limit is None else max(0, limit - metering.calls_today(tenant=tenant))
            headers = metering.rate_limit_headers(limit=limit, remaining=remaining)
        for header, value in headers.items():
            response.headers.setdefault(header, value)
        return response
