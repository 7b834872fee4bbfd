"""Per-tenant API keys for the tenant API: `Authorization: Api-Key cs_<prefix>.<secret>`."""

import logging

from django.db import connection
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import SAFE_METHODS

from security.client import client_ip
from tenants import services

log = logging.getLogger("courtside.security")


class ApiKeyPrincipal:
    """Who a request authenticated with an API key acts as: the key, not a user."""

    is_authenticated = True
    is_active = True
    is_staff = False
    is_superuser = False
    is_anonymous = False

    def __init__(self, key):
        self.key = key
        self.pk = self.id = None
        self.username = f"api-key:{key.prefix}"

    def get_username(self) -> str:
        """What audit fields (submitted_by, changed_by) record, as for a user: `api-key:<prefix>`."""
        return self.username

    def has_perm(self, perm, obj=None) -> bool:
        return False  # a key has its scope (read/write), never a user's model permissions

    def has_perms(self, perm_list, obj=None) -> bool:
        return False

    def has_module_perms(self, app_label) -> bool:
        return False

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.startswith(f"{self.keyword} "):
            return None
        tenant = getattr(connection, "tenant", None)
        if tenant is None or tenant.schema_name == "public":
            raise exceptions.AuthenticationFailed("API keys are for tenant hosts.")
        raw_key = header[len(self.keyword) + 1:]
        key = services.api_key_authenticate(raw_key=raw_key, tenant=tenant)
        if key is None:
            # Logged with the key's public prefix only (never its secret part), the site and the address.
            log.warning("API key refused: site=%s prefix=%r address=%s path=%s", tenant.schema_name,
                        raw_key.split(".", 1)[0][:24], client_ip(request), request.path)
            raise exceptions.AuthenticationFailed("Invalid, revoked or foreign API key.")
        if key.scope == key.Scope.READ and request.method not in SAFE_METHODS:
            raise exceptions.PermissionDenied("This API key is read-only.")
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request):
        return self.keyword


class ApiKeySchema(OpenApiAuthenticationExtension):
    """Describes API-key authentication in the OpenAPI schema."""

    target_class = "tenants.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Api-Key cs_<prefix>.<secret>`, created in the tenant admin."}
