"""The functions django-q2 workers call: thin entry points into tasks.services."""

from __future__ import annotations

import pydoc

from django.db import connection
from django_tenants.utils import tenant_context

from tasks import services


def execute(run_id: str, _priority=None, _eta=None, _lease=None):
    """One delivery of a TaskRun. The underscore arguments are broker hints, unused here."""
    return services.run_execute(run_id=run_id)


def fire_schedule(schedule_id: int):
    """Called by django-q2's scheduler for a TaskSchedule that is due."""
    run = services.schedule_fire(schedule_id=schedule_id)
    return str(run.pk) if run else None


def recover_stalled_runs():
    """Scheduled every minute: runs whose package was lost go back to the broker."""
    return services.recover_stalled_runs()


def run_in_schema(schema_name: str, func, *args, **kwargs):
    """A plain `async_task` enqueued in a tenant's context, run in that tenant's schema.

    The tasks app's pre_enqueue receiver wraps such packages in this function;
    a tenant that no longer exists fails the task loudly instead of running it
    in public.
    """
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(schema_name=schema_name).first()
    if tenant is None:
        raise services.TenantMissing(f"Tenant schema {schema_name!r} no longer exists: the task was not run.")
    target = func if callable(func) else pydoc.locate(func)
    if target is None:
        raise ValueError(f"Function {func} is not defined")
    try:
        with tenant_context(tenant):
            return target(*args, **kwargs)
    finally:
        connection.set_schema_to_public()
