"""Tenant resolution that answers unknown hosts with the JSON error shape; URLs without NUL on API paths."""

from django.core.exceptions import DisallowedHost
from django.http import JsonResponse
from django.http.request import split_domain_port
from django_tenants.middleware.main import TenantMainMiddleware
from django_tenants.utils import remove_www

from core.api import error_body, is_api_request, json_400


class JsonTenantMainMiddleware(TenantMainMiddleware):
    """django-tenants' host lookup; an unknown host gets a JSON 404, never the public site."""

    def process_request(self, request):
        try:
            request.get_host()
        except DisallowedHost as error:  # django-tenants would answer an empty 404
            return json_400(request, error)
        return super().process_request(request)

    @staticmethod
    def hostname_from_request(request):
        # Host names are case-insensitive and may end in a dot: `LOCALHOST` is `localhost`, as in the
        # heartbeat fast path (services/fastpath.py), which normalises the same way.
        domain, _port = split_domain_port(request.get_host())
        return remove_www(domain)

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


class ApiTextMiddleware:
    """A NUL (%00) in an API path or query parameter gets a JSON 400: PostgreSQL text cannot hold one.

    Bodies are checked by the API's parser (core/api/parsers.py); this covers the URL, for every view.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if is_api_request(request) and _url_holds_nul(request):
            return JsonResponse(
                error_body(code="nul_character", message="The URL holds a NUL character (%00).",
                           detail={"path": request.path.replace("\x00", "\\u0000")}),
                status=400,
            )
        return self.get_response(request)


def _url_holds_nul(request) -> bool:
    if "\x00" in request.path:
        return True
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in request.GET.lists())
