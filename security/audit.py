"""The audit log of privileged writes, on django-auditlog.

Entries live in the schema the write happened in (auditlog is a shared and a
tenant app): the operator's writes in public, a tenant admin's in its own
schema, so a tenant's admin lists only its own entries and an entry's actor is
a user of that same schema. Who, when and from where come from the request
(security.middleware) or, for commands and workers, from the process
(COURTSIDE_OPERATOR or the OS user). Secrets never reach an entry: key and
token hashes are not tracked, passwords show as changed only, configuration
values are masked by key name and schema (configuration.masking).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

from auditlog.models import LogEntry
from auditlog.registry import auditlog
from auditlog.signals import pre_log
from django.conf import settings
from django.db import connection, transaction
from django.db.models.signals import post_save, pre_save
from django.utils import timezone
from django_tenants.utils import schema_context

from core.masking import MASK

log = logging.getLogger("courtside.security")

ACTIONS = {"create": LogEntry.Action.CREATE, "update": LogEntry.Action.UPDATE, "delete": LogEntry.Action.DELETE}
PRUNE_BATCH = 10_000
THROTTLING_FIELDS = ["throttling_failure_timestamp", "throttling_failure_count", "last_used_at"]

# The configuration entry being logged, for the mask callable (auditlog hands it the value only).
_logged_instance: contextvars.ContextVar = contextvars.ContextVar("courtside_audit_instance", default=None)


def register_models() -> None:
    """What is audited: every model an operator or a tenant admin changes to run the business."""
    from django.contrib.auth.models import Group, User
    from django_otp.plugins.otp_static.models import StaticDevice
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from configuration.models import ConfigEntry, ConfigSchema, TenantOverride
    from registry.models import ServiceInstance, ServiceToken
    from schemas.models import Rollout
    from tasks.models import TaskRun, TaskSchedule
    from tenants.models import ApiKey, Domain, Plan, Tenant

    if auditlog.contains(Tenant):
        return
    auditlog.register(Tenant, exclude_fields=["storage_bytes", "storage_measured_at"])  # measured every 15 min
    auditlog.register(Domain)
    auditlog.register(Plan)
    auditlog.register(ApiKey, exclude_fields=["secret_hash", "last_used_at"])
    auditlog.register(ServiceToken, exclude_fields=["token_hash"])
    auditlog.register(ServiceInstance, exclude_fields=["status", "last_heartbeat", "updated_at"])
    for model in (ConfigEntry, TenantOverride):
        auditlog.register(model, mask_fields=["value"], mask_callable="security.audit.mask_config_value")
    auditlog.register(ConfigSchema)
    auditlog.register(Rollout, exclude_fields=["done", "results"])  # progress is not a privileged write
    auditlog.register(TaskSchedule)
    auditlog.register(User, exclude_fields=["last_login"], mask_fields=["password"],
                      m2m_fields={"groups", "user_permissions"})
    auditlog.register(Group, m2m_fields={"permissions"})
    auditlog.register(TOTPDevice, exclude_fields=["key", "last_t", "drift", *THROTTLING_FIELDS])
    auditlog.register(StaticDevice, exclude_fields=THROTTLING_FIELDS)
    pre_log.connect(_remember_instance, dispatch_uid="security.audit.instance")
    from configuration.signals import secret_keys_declared

    secret_keys_declared.connect(redact_configuration_history, dispatch_uid="security.audit.redact")
    pre_save.connect(_fill_actor, sender=LogEntry, dispatch_uid="security.audit.actor")
    post_save.connect(_task_cancel_logged, sender=TaskRun, dispatch_uid="security.audit.task_cancel")


# ------------------------------------------------------------------ masking

def mask_whole(value: str) -> str:
    """AUDITLOG_MASK_CALLABLE: nothing of a masked value is kept (auditlog's default keeps half)."""
    return MASK if value not in (None, "", "None") else value


def _remember_instance(sender, instance, **kwargs):
    _logged_instance.set(instance)


def mask_config_value(value: str) -> str:
    """A configuration entry's value with its secret parts masked, by key name and schema; all of it if unsure."""
    from configuration import config

    entry = _logged_instance.get()
    if entry is None or not hasattr(entry, "key") or value in (None, "None"):
        return MASK if value not in (None, "None") else value
    if getattr(entry, "secret", False):
        return MASK
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return MASK
    return json.dumps(config.mask(entry.key, parsed, tenant=entry.tenant), sort_keys=True)


# ------------------------------------------------------------------ who, when, from where

def process_actor() -> dict:
    """Who a write outside a request is by: the operator running a command, or a worker."""
    from schemas.ledger import operator_name

    argv = sys.argv
    command = argv[1] if len(argv) > 1 and argv[0].endswith("manage.py") else ""
    via = "worker" if command == "qcluster" else f"command:{command}" if command else "process"
    return {"actor": operator_name(), "via": via}


def _fill_actor(sender, instance, **kwargs):
    # Runs before the request's own context (security.middleware), which replaces this for HTTP writes.
    data = dict(instance.additional_data or {})
    if "actor" not in data:
        data.update(process_actor())
    data.setdefault("site", connection.schema_name)
    instance.additional_data = data


def record_event(instance, *, action: str, changes: dict) -> LogEntry:
    """Log a privileged write that is not a plain model save (a lockout cleared, a task cancelled)."""
    changes = {field: [None if v is None else str(v) for v in values] for field, values in changes.items()}
    return LogEntry.objects.log_create(instance, force_log=True, action=ACTIONS[action], changes=changes)


def _task_cancel_logged(sender, instance, created=False, update_fields=None, **kwargs):
    # tasks.services.task_cancel saves cancel_requested alone first: that save is the operator's act.
    if created or not update_fields or "cancel_requested" not in update_fields or not instance.cancel_requested:
        return
    record_event(instance, action="update", changes={"cancel_requested": [False, True],
                                                     "status": [instance.status, None]})


# ------------------------------------------------------------------ retention

def audit_schemas() -> list[str]:
    from tenants.models import Tenant

    tenants = Tenant.objects.exclude(schema_name="public").order_by("schema_name")
    return ["public", *tenants.values_list("schema_name", flat=True)]


def _delete_older(queryset, cutoff_field: str, cutoff) -> int:
    deleted = 0
    old = queryset.filter(**{f"{cutoff_field}__lt": cutoff})
    while True:  # in batches: a long backlog never holds one huge delete
        ids = list(old.values_list("pk", flat=True)[:PRUNE_BATCH])
        if not ids:
            return deleted
        with transaction.atomic():
            deleted += queryset.model.objects.filter(pk__in=ids).delete()[0]


def audit_prune(*, days: int | None = None, now=None, progress=None) -> dict:
    """Delete audit entries and login history older than the retention, in every schema."""
    from axes.models import AccessFailureLog, AccessLog

    days = settings.AUDIT_RETENTION_DAYS if days is None else days
    if days < 1:
        raise ValueError("The retention must be at least one day.")
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    schemas = audit_schemas()
    totals = {"schemas": len(schemas), "audit_entries": 0, "login_history": 0, "cutoff": cutoff.isoformat()}
    for done, schema in enumerate(schemas, start=1):
        with schema_context(schema):
            totals["audit_entries"] += _delete_older(LogEntry.objects.all(), "timestamp", cutoff)
            for model in (AccessLog, AccessFailureLog):
                totals["login_history"] += _delete_older(model.objects.all(), "attempt_time", cutoff)
        if progress is not None:
            progress(done / len(schemas), f"{schema}: pruned")
    log.info("Audit log pruned: %s", totals)
    return totals


# ------------------------------------------------------------------ keys that became secret

def redact_configuration_history(sender=None, *, keys, **kwargs) -> int:
    """Mask what audit entries kept in clear of configuration values at or under `keys` (now secret).

    A value written while its key was not secret was logged as it was; once a
    schema marks the key secret, the configuration encrypts its own stored
    values and this redacts the audit log's copies, in every schema, in the
    same transaction (receiver of configuration.signals.secret_keys_declared).
    """
    from django.contrib.contenttypes.models import ContentType

    from configuration.models import ConfigEntry, TenantOverride

    content_types = [ContentType.objects.get_for_model(model, for_concrete_model=False).pk
                     for model in (ConfigEntry, TenantOverride)]
    redacted = 0
    table = connection.ops.quote_name(LogEntry._meta.db_table)
    with connection.cursor() as cursor:
        for schema in audit_schemas():
            for key in keys:
                # object_repr is the entry's str(): its key, or "key (schema)" for a tenant's override.
                cursor.execute(
                    f"UPDATE {connection.ops.quote_name(schema)}.{table} "
                    "SET changes = jsonb_set(changes, '{value}', to_jsonb(ARRAY[%s, %s])), changes_text = '' "
                    "WHERE content_type_id = ANY(%s) AND changes ? 'value' "
                    "AND (object_repr = %s OR object_repr LIKE %s OR object_repr LIKE %s)",
                    [MASK, MASK, content_types, key, f"{key}.%", f"{key} (%"],
                )
                redacted += cursor.rowcount
    return redacted
