"""The functions django-q2 workers call (their dotted paths are stored in packages and schedules): thin entries."""

from __future__ import annotations

import pydoc

from django.db import connection
from django_tenants.utils import tenant_context

from tasks.actions.schedules import schedule_fire
from tasks.engine.delivery import Delivery
from tasks.engine.execution import TenantMissing, run_execute


def execute(run_id: str, _priority=None, _eta=None, _lease=None):
    """One delivery of a TaskRun. The underscore arguments are broker hints, unused here."""
    try:
        return run_execute(run_id=run_id)
    except BaseException:
        # run_execute records every outcome of the task itself; it raises only when it could not record (the
        # database was unreachable) or the tenant is gone (recorded failed first). Not acknowledged, the
        # package comes back after its lease and the run's row decides again, instead of the run staying
        # `queued` with its package deleted.
        Delivery.withhold_acknowledgement()
        raise


def fire_schedule(schedule_id: int):
    """Called by django-q2's scheduler for a TaskSchedule that is due."""
    run = schedule_fire(schedule_id=schedule_id)
    return str(run.pk) if run else None


def run_in_schema(schema_name: str, func, *args, **kwargs):
    """A plain `async_task` enqueued in a tenant's context, run in that tenant's schema.

    The tasks app's pre_enqueue receiver wraps such packages in this function;
    a tenant that no longer exists fails the task loudly instead of running it
    in public.
    """
    from tenants.models import Tenant

    tenant = Tenant.objects.filter(schema_name=schema_name).first()
    if tenant is None:
        raise TenantMissing(f"Tenant schema {schema_name!r} no longer exists: the task was not run.")
    target = func if callable(func) else pydoc.locate(func)
    if target is None:
        raise ValueError(f"Function {func} is not defined")
    try:
        with tenant_context(tenant):
            return target(*args, **kwargs)
    finally:
        connection.set_schema_to_public()
