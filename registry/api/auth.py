"""Per-service token authentication: `Authorization: Bearer cs_svc_...`, never a tenant's key."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from core.permissions import OperatorOnly
from registry import selectors


class ServicePrincipal:
    """The caller behind a service token: it speaks for one service name only."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None

    def __init__(self, service_name: str):
        self.service_name = service_name

    def __str__(self) -> str:
        return f"service:{self.service_name}"

    def get_username(self) -> str:
        return str(self)


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None  # not ours: session or basic auth may still apply
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send 'Authorization: Bearer <service token>'.")
        service_name = selectors.token_service_name(header[1].decode(errors="replace"))
        if service_name is None:
            raise exceptions.AuthenticationFailed("Unknown service token.")
        principal = ServicePrincipal(service_name)
        return principal, principal

    def authenticate_header(self, request):
        return self.keyword


IsOperator = OperatorOnly  # staff users of the public schema: Courtside's operators (core.permissions)


class IsOperatorOrService(permissions.BasePermission):
    def has_permission(self, request, view):
        return isinstance(request.user, ServicePrincipal) or IsOperator().has_permission(request, view)


def token_service(request) -> str | None:
    """The service a token-authenticated request speaks for; None for an operator (who speaks for all)."""
    return request.user.service_name if isinstance(request.user, ServicePrincipal) else None


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI: the service token is a bearer token."""

    target_class = "registry.api.auth.ServiceTokenAuthentication"
    name = "ServiceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer",
                "description": "A service token (`cs_svc_...`) from `manage.py service_token <name>`."}
