"""Every write to tenants goes through here: lifecycle, plans, usage, API keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.validators import validate_email
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from tasks import actions as task_actions
from tenants import provisioning, quotas
from tenants.models import (
    RESERVED_SCHEMA_NAMES,
    ApiKey,
    Domain,
    Plan,
    PlanChange,
    Tenant,
    UsageDay,
    schema_name_validator,
)

logger = logging.getLogger(__name__)

_HOSTNAME_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"


# ---------------------------------------------------------------- validation

def validate_domain(domain: str) -> str:
    domain = (domain or "").strip().lower()
    if not re.fullmatch(rf"{_HOSTNAME_LABEL}(\.{_HOSTNAME_LABEL})*", domain) or len(domain) > 253:
        raise ValidationError({"domain": f"{domain!r} is not a valid host name."})
    if Domain.objects.filter(domain=domain).exists():
        raise ValidationError({"domain": f"The domain {domain!r} already serves another tenant."})
    return domain


def validate_schema_name(schema_name: str) -> str:
    schema_name = (schema_name or "").strip()
    if schema_name in RESERVED_SCHEMA_NAMES or schema_name.startswith(("pg_", provisioning.POOL_PREFIX)):
        raise ValidationError({"schema_name": f"{schema_name!r} is a reserved name."})
    try:
        schema_name_validator(schema_name)
    except ValidationError as error:
        raise ValidationError({"schema_name": error.messages}) from error
    if Tenant.objects.filter(schema_name=schema_name).exists():
        raise ValidationError({"schema_name": f"A tenant with schema {schema_name!r} already exists."})
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema_name])
        if cursor.fetchone():
            raise ValidationError({"schema_name": f"A schema named {schema_name!r} exists without a tenant; "
                                                  f"drop it or give the tenant another name."})
    return schema_name


def plan_get(*, code: str | Plan | None) -> Plan:
    if isinstance(code, Plan):
        return code
    code = (code or settings.TENANT_DEFAULT_PLAN).upper()
    try:
        return Plan.objects.get(code=code)
    except Plan.DoesNotExist:
        known = ", ".join(Plan.objects.values_list("code", flat=True))
        raise ValidationError({"plan": f"Unknown plan {code!r}; choose one of {known}."}) from None


def default_domain_for(schema_name: str) -> str:
    # Underscores are valid in schema names but not in host names.
    return f"{schema_name.replace('_', '-')}.{settings.TENANT_BASE_DOMAIN}"


def quota_error_from(error: DatabaseError) -> ValidationError | None:
    """The row-quota trigger's refusal as a ValidationError; None for any other database error."""
    cause = error.__cause__
    if getattr(cause, "sqlstate", None) == quotas.QUOTA_SQLSTATE:
        return ValidationError(str(cause.diag.message_primary), code="quota_exceeded")
    return None


# ----------------------------------------------------------------- lifecycle

def public_tenant_ensure(*, domains: list[str] | None = None) -> Tenant:
    """The operator's public tenant and its domains; idempotent."""
    with transaction.atomic():
        tenant, _ = Tenant.objects.get_or_create(schema_name="public", defaults={"name": "Courtside operator"})
        for index, domain in enumerate(domains or [settings.TENANT_BASE_DOMAIN, "127.0.0.1"]):
            Domain.objects.get_or_create(domain=domain, defaults={"tenant": tenant, "is_primary": index == 0})
    return tenant


def tenant_create(
    *,
    name: str,
    schema_name: str,
    plan: str | Plan | None = None,
    domain: str | None = None,
    admin_email: str | None = None,
    admin_password: str | None = None,
    admin_username: str = "admin",
    created_by: str = "",
) -> Tenant:
    """Create a tenant with its schema, plan, primary domain and optionally its first admin user.

    The schema comes from the pool when a fresh one is ready (a rename), else
    from running the migrations; either way it holds the NBA reference data
    (the schema seeds). All in one transaction: PostgreSQL DDL is
    transactional, so a failure (a plan whose users quota has no room for the
    first admin included) leaves neither a row nor a schema behind.
    """
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "A tenant needs a name."})
    schema_name = validate_schema_name(schema_name)
    plan = plan_get(code=plan)
    domain = validate_domain(domain or default_domain_for(schema_name))
    if admin_email:
        try:
            validate_email(admin_email)
        except ValidationError as error:
            raise ValidationError({"admin_email": error.messages}) from error
    if admin_email and not admin_password:
        raise ValidationError({"admin_password": "The first admin user needs a password."})

    with transaction.atomic():
        tenant = Tenant(name=name, schema_name=schema_name, plan=plan)
        tenant.full_clean(validate_unique=False, exclude=["logo"])
        provisioning.tenant_schema_provide(tenant=tenant)
        Domain.objects.create(domain=domain, tenant=tenant, is_primary=True)
        PlanChange.objects.create(tenant=tenant, from_plan=None, to_plan=plan, changed_by=created_by)
        if admin_password:
            with schema_context(schema_name):
                try:
                    get_user_model().objects.create_superuser(
                        username=admin_username, email=admin_email or "", password=admin_password
                    )
                except DatabaseError as error:
                    refusal = quota_error_from(error)  # the plan's users quota leaves no room for the first admin
                    if refusal is None:
                        raise
                    raise refusal from error
        if settings.TENANT_POOL_SIZE:
            transaction.on_commit(_enqueue_pool_refill)
    return tenant


def _enqueue_pool_refill() -> None:
    # The registered task (tenants.tasks.pool_refill): a TaskRun the operator sees in the admin.
    task_actions.task_submit(name="tenants.pool_refill", submitted_by="tenant sign-up")


def tenant_change_plan(*, tenant: Tenant, plan: str | Plan, changed_by: str = "") -> Tenant:
    """Move a tenant to another plan; the new quotas apply from its next request."""
    plan = plan_get(code=plan)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if tenant.plan_id == plan.pk:
            raise ValidationError({"plan": f"{tenant.name} is already on the {plan.name} plan."})
        PlanChange.objects.create(tenant=tenant, from_plan=tenant.plan, to_plan=plan, changed_by=changed_by)
        tenant.plan = plan
        tenant.save(update_fields=["plan"])
    return tenant


def _set_status(tenant: Tenant, status: str) -> Tenant:
    if tenant.is_public:
        raise ValidationError("The operator's public tenant cannot be suspended.")
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        if tenant.status == status:
            raise ValidationError({"status": f"{tenant.name} is already {tenant.get_status_display().lower()}."})
        tenant.status = status
        tenant.save(update_fields=["status"])
    return tenant


def tenant_suspend(*, tenant: Tenant) -> Tenant:
    """Suspend: the tenant's API answers 403 and its admin turns read-only."""
    return _set_status(tenant, Tenant.Status.SUSPENDED)


def tenant_reactivate(*, tenant: Tenant) -> Tenant:
    return _set_status(tenant, Tenant.Status.ACTIVE)


def tenant_schema_rename(*, tenant: Tenant, new_schema_name: str) -> Tenant:
    """Give a tenant's schema a new name: the schema, the tenant row and its migration ledger in one transaction.

    Its domains stay as they are (they are names on the web, not the schema's);
    its uploaded files follow it to MEDIA_ROOT/<new name>/ once the rename has
    committed. Task runs queued before the rename still name the old schema
    and fail by that name rather than run anywhere else.
    """
    if tenant.is_public:
        raise ValidationError("The operator's public schema cannot be renamed.")
    new_schema_name = validate_schema_name(new_schema_name)
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        old_schema_name = tenant.schema_name
        provisioning.schema_rename(old_name=old_schema_name, new_name=new_schema_name)
        tenant.schema_name = new_schema_name
        tenant.save(update_fields=["schema_name"])
        transaction.on_commit(lambda: _tenant_media_move(old_schema_name, new_schema_name))
    return tenant


def _tenant_media_move(old_schema_name: str, new_schema_name: str) -> None:
    # Tenant files live under MEDIA_ROOT/<schema>/ (MULTITENANT_RELATIVE_MEDIA_ROOT).
    old, new = Path(settings.MEDIA_ROOT) / old_schema_name, Path(settings.MEDIA_ROOT) / new_schema_name
    try:
        if old.is_dir() and not new.exists():
            old.rename(new)
    except OSError as error:  # the rename has committed: say what is left to do rather than fail it
        logger.warning("Schema %s is now %s, but its files could not follow: move %s to %s (%s).",
                       old_schema_name, new_schema_name, old, new, error)


# The audit log and login history live in the tenant schema too: a deletion keeps them in the export.
TENANT_EXPORT_APPS = ["auth", "league", "auditlog", "axes"]


BRANDING_FIELDS = ("display_name", "primary_color", "support_email", "logo")


def tenant_branding_update(*, tenant: Tenant, display_name: str, primary_color: str, support_email: str,
                           logo=None, clear_logo: bool = False) -> Tenant:
    """Change a tenant's white-label branding (from its own admin or the operator's); nothing else.

    Validated by the model (hex colour, e-mail, PNG or JPEG logo); saved in the
    tenant's schema context, so the logo lands under MEDIA_ROOT/<schema>/ where
    only the tenant's own host serves it.
    """
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
        tenant.display_name = (display_name or "").strip()
        tenant.primary_color = (primary_color or "").strip()
        tenant.support_email = (support_email or "").strip()
        if clear_logo:
            tenant.logo = None
        elif logo:
            tenant.logo = logo
        tenant.full_clean(validate_unique=False, validate_constraints=False,
                          exclude=[f.name for f in Tenant._meta.fields if f.name not in BRANDING_FIELDS])
        with schema_context(tenant.schema_name):
            tenant.save(update_fields=list(BRANDING_FIELDS))
    return tenant


def tenant_export(*, tenant: Tenant, directory: Path | None = None) -> Path:
    """Write all of a tenant's schema data to a JSON file (Django's dumpdata format); return its path."""
    directory = Path(directory or settings.TENANT_EXPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%fZ")
    path = directory / f"{tenant.schema_name}-{stamp}.json"
    with schema_context(tenant.schema_name):
        call_command("dumpdata", *TENANT_EXPORT_APPS, output=str(path), indent=1, verbosity=0)
    # The account's public rows too (usage ledger, plan history): billing still needs them after a deletion.
    account_rows = [tenant, *tenant.domains.all(), *tenant.plan_changes.all(), *tenant.usage_days.all()]
    path.with_name(f"{tenant.schema_name}-{stamp}-account.json").write_text(
        serializers.serialize("json", account_rows, indent=1)
    )
    return path


def tenant_delete(*, tenant: Tenant, confirm: str, export_directory: Path | None = None) -> Path:
    """Export the tenant's data, then drop its schema and rows. `confirm` must repeat the schema name."""
    if tenant.is_public:
        raise ValidationError("The operator's public tenant cannot be deleted.")
    if confirm != tenant.schema_name:
        raise ValidationError({"confirm": f"Type the schema name {tenant.schema_name!r} to confirm the deletion."})
    path = tenant_export(tenant=tenant, directory=export_directory)
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Fire deferred foreign-key checks now: DROP SCHEMA refuses tables with pending trigger events.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        Tenant.objects.select_for_update().get(pk=tenant.pk).delete(force_drop=True)
    return path


# ---------------------------------------------------------------- usage

def utc_today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def tenant_usage_refresh(*, tenants=None) -> int:
    """Measure storage (total size of the schema's relations) and every row-count quota into today's ledger row."""
    tenants = list(tenants if tenants is not None else Tenant.objects.exclude(schema_name="public"))
    if not tenants:
        return 0
    today, now = utc_today(), timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.nspname, COALESCE(sum(pg_total_relation_size(c.oid)), 0)
            FROM pg_namespace n
            LEFT JOIN pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'm', 'p')
            WHERE n.nspname = ANY(%s)
            GROUP BY n.nspname
            """,
            [[t.schema_name for t in tenants]],
        )
        sizes = dict(cursor.fetchall())
        for tenant in tenants:
            if tenant.schema_name not in sizes:
                continue
            counts_sql, counted = quotas.row_counts_sql(tenant.schema_name, connection.ops.quote_name)
            cursor.execute(counts_sql)
            measured = {kind.usage_field: count for kind, count in zip(counted, cursor.fetchone(), strict=True)
                        if kind.usage_field}
            size = sizes[tenant.schema_name]
            Tenant.objects.filter(pk=tenant.pk).update(storage_bytes=size, storage_measured_at=now)
            tenant.storage_bytes, tenant.storage_measured_at = size, now
            UsageDay.objects.update_or_create(
                tenant=tenant, date=today, defaults={quotas.get("storage").usage_field: size, **measured},
            )
    return len(sizes)


# ---------------------------------------------------------------- API keys

def _hash_secret(secret: str) -> str:
    # Keys carry 256 bits of randomness, so a plain SHA-256 is as strong as a slow hash here.
    return hashlib.sha256(secret.encode()).hexdigest()


def api_key_create(*, tenant: Tenant, name: str, scope: str = ApiKey.Scope.READ,
                   created_by: str = "") -> tuple[ApiKey, str]:
    """Create a key; returns it with the full key string, which is shown once and never stored."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "Give the key a name that says what it is for."})
    if scope not in ApiKey.Scope.values:
        raise ValidationError({"scope": f"Scope must be one of {', '.join(ApiKey.Scope.values)}."})
    if tenant.is_public:
        raise ValidationError("API keys belong to a tenant, not to the operator site.")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(tenant=tenant, name=name, prefix=prefix, secret_hash=_hash_secret(secret), scope=scope,
                 created_by=created_by)
    key.full_clean()
    key.save()
    return key, f"cs_{prefix}.{secret}"


def api_key_authenticate(*, raw_key: str, tenant: Tenant) -> ApiKey | None:
    """The active key of this tenant matching `raw_key`, else None (wrong tenant included)."""
    match = re.fullmatch(r"cs_([0-9a-f]{8})\.([A-Za-z0-9_-]{20,})", (raw_key or "").strip())
    if not match:
        return None
    prefix, secret = match.groups()
    key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if key is None or key.tenant_id != tenant.pk:
        return None
    if not secrets.compare_digest(key.secret_hash, _hash_secret(secret)):
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > dt.timedelta(seconds=60):
        # At most one write a minute per key, not one per request.
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    return key


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
