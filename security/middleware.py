"""Who and where for the audit log, per request."""

from __future__ import annotations

from auditlog.context import set_extra_data
from django.contrib.auth import get_user_model
from django.db import connection

from security.client import client_ip


def _channel(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    return "admin" if path.startswith("/admin/") else "web"


def _user(request):
    # DRF puts the user it authenticated (basic auth, an API key's principal) on the Django request too.
    user = getattr(request, "user", None)
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _actor_id(request):
    user = _user(request)
    tenant = getattr(request, "tenant", None)
    # The entry lands in the connection's schema: name the user only if it is a user of that schema
    # (provisioning writes into a new tenant's schema during an operator's request).
    if isinstance(user, get_user_model()) and tenant is not None and connection.schema_name == tenant.schema_name:
        return user.pk
    return None


def _actor_email(request):
    if _actor_id(request) is None:
        return None
    return getattr(_user(request), "email", None) or None


def _additional_data(request) -> dict:
    user = _user(request)
    label = user.get_username() if isinstance(user, get_user_model()) else str(user) if user else "anonymous"
    tenant = getattr(request, "tenant", None)
    return {"actor": label, "via": _channel(request.path), "site": connection.schema_name,
            "actor_site": tenant.schema_name if tenant is not None else None,
            "request": f"{request.method} {request.path}"[:200]}


class AuditContextMiddleware:
    """Couples django-auditlog's entries to the request: actor (read when the entry is written, so the user
    DRF authenticates counts), client address (the same rule as login throttling), channel and site."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        context = {
            "remote_addr": client_ip(request),
            "actor_id": lambda: _actor_id(request),
            "actor_email": lambda: _actor_email(request),
            "additional_data": lambda: _additional_data(request),
        }
        with set_extra_data(context_data=context):
            return self.get_response(request)
