"""Guards of the tenant sites: suspension, storage quota, and the request's admission scope (tenants.metering)."""

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from rest_framework.permissions import SAFE_METHODS

from core.api import error_body
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
        # The request's admission: the API's throttle admits once inside it; it is released when the scope ends.
        with metering.scope() as admission:
            response = refusal or self.get_response(request)
            if admission.admission is None and (not is_api or not settings.TENANT_METERING_ENABLED):
                return response
            for header, value in admission.headers(tenant).items():
                response.headers.setdefault(header, value)
        return response
