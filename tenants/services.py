"""Every write to tenants goes through here."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django_tenants.utils import schema_context

from tenants.models import RESERVED_SCHEMA_NAMES, Domain, Tenant, schema_name_validator

_HOSTNAME_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"


def validate_domain(domain: str) -> str:
    import re

    domain = (domain or "").strip().lower()
    if not re.fullmatch(rf"{_HOSTNAME_LABEL}(\.{_HOSTNAME_LABEL})*", domain) or len(domain) > 253:
        raise ValidationError({"domain": f"{domain!r} is not a valid host name."})
    if Domain.objects.filter(domain=domain).exists():
        raise ValidationError({"domain": f"The domain {domain!r} already serves another tenant."})
    return domain


def validate_schema_name(schema_name: str) -> str:
    schema_name = (schema_name or "").strip()
    if schema_name in RESERVED_SCHEMA_NAMES or schema_name.startswith("pg_"):
        raise ValidationError({"schema_name": f"{schema_name!r} is a reserved name."})
    try:
        schema_name_validator(schema_name)
    except ValidationError as error:
        raise ValidationError({"schema_name": error.messages}) from error
    if Tenant.objects.filter(schema_name=schema_name).exists():
        raise ValidationError({"schema_name": f"A tenant with schema {schema_name!r} already exists."})
    return schema_name


def default_domain_for(schema_name: str) -> str:
    return f"{schema_name}.{settings.TENANT_BASE_DOMAIN}"


def public_tenant_ensure(*, domains: list[str] | None = None) -> Tenant:
    """The operator's public tenant and its domains; idempotent."""
    with transaction.atomic():
        tenant, _ = Tenant.objects.get_or_create(
            schema_name="public", defaults={"name": "Courtside operator"}
        )
        for index, domain in enumerate(domains or [settings.TENANT_BASE_DOMAIN, "127.0.0.1"]):
            Domain.objects.get_or_create(
                domain=domain, defaults={"tenant": tenant, "is_primary": index == 0}
            )
    return tenant


@transaction.atomic
def tenant_create(
    *,
    name: str,
    schema_name: str,
    domain: str | None = None,
    admin_email: str | None = None,
    admin_password: str | None = None,
    admin_username: str = "admin",
) -> Tenant:
    """Create a tenant, its schema, its primary domain and optionally its first admin user.

    Runs in one transaction: PostgreSQL DDL is transactional, so a failure
    anywhere leaves neither a tenant row nor a schema behind.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A tenant needs a name."})
    schema_name = validate_schema_name(schema_name)
    domain = validate_domain(domain or default_domain_for(schema_name))
    if admin_email:
        try:
            validate_email(admin_email)
        except ValidationError as error:
            raise ValidationError({"admin_email": error.messages}) from error

    tenant = Tenant(name=name, schema_name=schema_name)
    tenant.full_clean(validate_unique=False)
    tenant.save(verbosity=0)
    Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)

    if admin_email or admin_password:
        with schema_context(schema_name):
            get_user_model().objects.create_superuser(
                username=admin_username, email=admin_email or "", password=admin_password
            )
    return tenant
