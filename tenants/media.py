"""Uploaded files and reports, served per tenant, only to that site's own users or through short-lived signed links.

A host serves only its own schema's folder (MEDIA_ROOT/<schema>/). Within it,
logos (`branding/`, shown on login pages before anyone logs in) are public;
everything else (reports, uploads) needs an authenticated user of that site
(authenticated as the API does: an API key of that tenant, the session, Basic) or a
signed link: TimestampSigner over "<schema>/<path>", valid MEDIA_LINK_SECONDS,
so a link opens exactly one file on exactly one host.
"""

from __future__ import annotations

import posixpath
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage
from django.http import Http404, JsonResponse
from django.views.decorators.http import require_safe
from django.views.static import serve
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.settings import api_settings

from core.api import error_body
from tenants.api.authentication import ApiKeyAuthentication
from tenants.models import Domain

PUBLIC_PREFIXES = ("branding/",)  # tenant logos: the login page shows them to anyone
LINK_SALT = "courtside.media-link"
LINK_PARAMETER = "sig"
DEFAULT_LINK_SECONDS = 600


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=LINK_SALT)


def _link_seconds() -> int:
    return int(getattr(settings, "MEDIA_LINK_SECONDS", DEFAULT_LINK_SECONDS))


def _media_path(schema_name: str, path: str) -> str:
    return f"/{settings.MEDIA_URL.strip('/')}/{quote(schema_name)}/{quote(path)}"


def _host_schema(request) -> str | None:
    tenant = getattr(request, "tenant", None)
    return tenant.schema_name if tenant is not None else None


def _site_origin(request, schema_name: str) -> str:
    """scheme://host[:port] of the schema's primary domain, seen from this request (same scheme and port)."""
    domain = (Domain.objects.filter(tenant__schema_name=schema_name).order_by("-is_primary", "pk")
              .values_list("domain", flat=True).first())
    if domain is None:
        raise Http404("No site serves this file.")
    port = request.get_port()
    default = "443" if request.is_secure() else "80"
    return f"{request.scheme}://{domain}" + ("" if port in (default, "", None) else f":{port}")


def signed_media_url(*, schema_name: str, path: str, request=None) -> str:
    """A link to MEDIA_ROOT/<schema>/<path> that works without a session for MEDIA_LINK_SECONDS.

    Relative when the request is on that schema's own host (or there is no
    request); otherwise absolute, on the schema's primary domain: a link is
    served only by the host of the schema it names.
    """
    value = f"{schema_name}/{path}"
    timestamp, signature = _signer().sign(value).rsplit(":", 2)[-2:]
    url = f"{_media_path(schema_name, path)}?{LINK_PARAMETER}={timestamp}:{signature}"
    if request is not None and _host_schema(request) != schema_name:
        return _site_origin(request, schema_name) + url
    return url


def result_link(result, *, schema_name: str, request=None) -> str | None:
    """A signed link to the file a task result names ({"path": "<schema>/<file>"}), for that run's schema only."""
    path = result.get("path") if isinstance(result, dict) else None
    if not isinstance(path, str):
        return None
    schema, _, relative = path.partition("/")
    relative = posixpath.normpath(relative) if relative else ""
    if schema != schema_name or not relative or relative.startswith(("../", "/")) or relative in (".", ".."):
        return None
    return signed_media_url(schema_name=schema, path=relative, request=request)


def _link_verdict(request, schema_name: str, path: str) -> str | None:
    """None for a valid link to this file; else an error code (no link, expired, bad)."""
    token = request.GET.get(LINK_PARAMETER, "")
    if not token:
        return "not_authenticated"
    try:
        _signer().unsign(f"{schema_name}/{path}:{token}", max_age=_link_seconds())
    except signing.SignatureExpired:
        return "link_expired"
    except signing.BadSignature:
        return "bad_link"
    return None


def _authenticated(request) -> bool:
    """A user of this site, authenticated exactly as the API authenticates (REST_FRAMEWORK's classes:
    the tenant's API key, the session, Basic), so every rule those carry applies to files too."""
    authenticators = [authenticator() for authenticator in api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    try:
        user = Request(request, authenticators=authenticators).user
    except exceptions.APIException:  # a wrong, revoked or foreign key, a bad password: nobody
        return False
    return bool(user is not None and user.is_authenticated and getattr(user, "is_active", True))


_REFUSALS = {
    "not_authenticated": (401, "Log in to this site, send an API key of this tenant, or use a signed link."),
    "link_expired": (403, "This link has expired; open the report again for a fresh one."),
    "bad_link": (403, "This link is not valid for this file."),
}


@require_safe
def tenant_media(request, schema_name: str, path: str):
    """/media/<schema>/<path>: 404 unless <schema> is the tenant of this host; 401/403 unless allowed.

    TenantFileSystemStorage writes to MEDIA_ROOT/<schema>/ and builds URLs the
    same way; checking the schema against the host's tenant means one tenant
    cannot read another's files by editing a URL, and the signature covers the
    schema and the path, so a link cannot be moved to another file either. (In
    production a web server in front can serve these with the same rules, e.g.
    X-Accel-Redirect after this check.)
    """
    if _host_schema(request) != schema_name:
        raise Http404("No such file.")
    relative = posixpath.normpath(path)
    if relative.startswith(("../", "/")) or relative in (".", ".."):
        raise Http404("No such file.")
    public = relative.startswith(PUBLIC_PREFIXES)
    if not public and not _authenticated(request):
        refusal = _link_verdict(request, schema_name, relative)
        if refusal is not None:
            status, message = _REFUSALS[refusal]
            response = JsonResponse(error_body(code=refusal, message=message), status=status)
            if status == 401:
                response["WWW-Authenticate"] = ApiKeyAuthentication.keyword
            return response
    # The storage's own location for the current (this host's) schema: where it wrote the file.
    response = serve(request, relative, document_root=default_storage.location)
    if not public:
        response["Cache-Control"] = "private, no-store"
    return response
