"""Whose site is this: the operator's, or a tenant's (with its branding)."""

from django_tenants.utils import get_public_schema_name


def site_identity(request):
    tenant = getattr(request, "tenant", None)
    if tenant is None or tenant.schema_name == get_public_schema_name():
        return {"courtside_site": {"is_operator": True, "title": "Courtside operator"}}
    return {
        "courtside_site": {
            "is_operator": False,
            "title": f"{tenant.name} · Courtside",
            "tenant": tenant,
        }
    }
