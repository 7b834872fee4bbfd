"""The tenants app's tasks, registered with the task layer; two of them are scheduled system jobs.

Each takes the TaskContext first; tenant work runs inside the tenant's schema.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import tempfile
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from configuration import keys
from tasks.models import Priority
from tasks.registry import ANY, register_task, system_job
from tenants import provisioning, quotas
from tenants.models import UsageDay
from tenants.services import tenant_usage_refresh


@register_task("tenants.export_usage_report", scope=ANY, timeout=120,
               schema={"type": "object", "additionalProperties": False,
                       "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 366}}})
def export_usage_report(ctx, days: int = 30):
    """Write a CSV of daily usage (storage, users, saved models): one tenant's, or every tenant's for the operator.

    A report longer than reports.max_rows (the tenant's view, or the operator's) is refused
    whole before anything is written: a report cut short would read as complete.
    """
    since = timezone.now().date() - dt.timedelta(days=days)
    rows = UsageDay.objects.filter(date__gte=since).select_related("tenant").order_by("tenant__schema_name", "date")
    if ctx.tenant is not None:
        rows = rows.filter(tenant=ctx.tenant)
    schema = ctx.tenant.schema_name if ctx.tenant is not None else "public"
    cap, total = keys.reports_max_rows(tenant=schema), rows.count()
    if total > cap:
        raise ValueError(f"The usage report of the last {days} days has {total} rows, more than "
                         f"reports.max_rows ({cap}): ask for fewer days, or raise reports.max_rows.")
    # The path carries the schema, so one tenant's report never lands beside another's.
    directory = Path(settings.MEDIA_ROOT) / schema / "reports"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"usage-{timezone.now():%Y%m%dT%H%M%S}-{str(ctx.run_id)[:8]}.csv"
    count = 0
    # Written beside the target and renamed: a reader never sees half a report, a failure leaves none.
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as file:
            writer = csv.writer(file)
            columns = quotas.measured_usage_fields()  # storage_bytes, then each row-count quota (tenants.quotas)
            writer.writerow(["tenant", "date", *columns])
            for row in rows[:cap]:
                writer.writerow([row.tenant.schema_name, row.date.isoformat(),
                                 *(getattr(row, column, "") for column in columns)])
                count += 1
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return {"path": str(path.relative_to(settings.MEDIA_ROOT)), "rows": count}


@system_job("tenants.refresh_storage_usage", every_minutes=15, schedule_name="tenants: usage refresh", scope=ANY,
            timeout=120, priority=Priority.LOW)
def refresh_storage_usage(ctx):
    """Measure storage of one tenant's schema, or of every tenant for the operator."""
    tenants = [ctx.tenant] if ctx.tenant is not None else None
    # Usage rows and the tenant table are public tables, reachable from a tenant's search_path too.
    measured = tenant_usage_refresh(tenants=tenants)
    return {"tenants_measured": measured}


@system_job("tenants.pool_refill", every_minutes=10, schedule_name="tenants: schema pool refill", timeout=300)
def pool_refill(ctx):
    """Drop stale pooled schemas and build fresh ones up to TENANT_POOL_SIZE (also right after a sign-up)."""
    return provisioning.pool_refill()
