"""Uploaded files, served per tenant: a host serves only its own schema's folder."""

from django.core.files.storage import default_storage
from django.http import Http404
from django.views.static import serve


def tenant_media(request, schema_name: str, path: str):
    """/media/<schema>/<path>: 404 unless <schema> is the tenant of this host.

    TenantFileSystemStorage writes to MEDIA_ROOT/<schema>/ and builds URLs the
    same way; checking the schema against the host's tenant means one tenant
    cannot read another's files by editing a URL. (In production a web server
    in front can serve these with the same rule.)
    """
    tenant = getattr(request, "tenant", None)
    if tenant is None or schema_name != tenant.schema_name:
        raise Http404("No such file.")
    # The storage's own location for the current (this host's) schema: where it wrote the file.
    return serve(request, path, document_root=default_storage.location)
