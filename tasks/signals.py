"""django-q2 signal receivers that give plain tasks a tenant context and every worker a clean schema.

Found on this machine: django-q2 tasks always start in whatever schema the
worker's connection was left in, and a task that switches schema leaves the
worker there for every later task. These receivers carry the submitter's
schema in the package and put the worker back in public around every task.
"""

from __future__ import annotations

import logging

from django import db
from django.db import connection, transaction
from django.dispatch import receiver
from django_q.signals import post_execute, post_execute_in_worker, pre_enqueue, pre_execute

from tasks.broker import RUN_FUNC, TENANT_KEY

logger = logging.getLogger("tasks")

# The key of a worker's result package that carries a success for the monitor to record.
SUCCESS_KEY = "courtside_success"

OUR_FUNCS = {RUN_FUNC, "tasks.runner.run_in_schema", "tasks.runner.fire_schedule",
             "tasks.runner.recover_stalled_runs"}


def _func_path(func) -> str:
    if isinstance(func, str):
        return func
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', '')}"


@receiver(pre_enqueue, dispatch_uid="tasks.carry_tenant")
def carry_tenant(sender, task, **kwargs):
    """A plain async_task submitted in a tenant's schema runs in that schema: wrap it, name the schema."""
    schema = getattr(connection, "schema_name", "public") or "public"
    task["schema_name"] = schema
    if schema == "public" or _func_path(task["func"]) in OUR_FUNCS:
        return
    # Its tenant's turn in the broker's dispatch, like the tenant's runs (tasks.broker).
    tenant = getattr(connection, "tenant", None)
    if getattr(tenant, "schema_name", None) == schema and isinstance(getattr(tenant, "pk", None), int):
        task.setdefault(TENANT_KEY, tenant.pk)
    task["args"] = (schema, task["func"], *task.get("args", ()))
    task["func"] = "tasks.runner.run_in_schema"


@receiver(pre_execute, dispatch_uid="tasks.start_in_public")
def start_in_public(sender, func, task, **kwargs):
    # Whatever the previous task did to this worker's connection, the next one starts in public.
    connection.set_schema_to_public()
    from tasks.services import Delivery

    args = task.get("args") or ()
    run_id = args[0] if args and _func_path(task.get("func")) == RUN_FUNC else None
    Delivery.begin(ack_id=task.get("ack_id"), run_id=run_id)


@receiver(post_execute_in_worker, dispatch_uid="tasks.back_to_public")
def back_to_public(sender, func, task, **kwargs):
    connection.set_schema_to_public()
    from tasks.services import Delivery

    success = Delivery.end()
    if success is not None:
        # The monitor records the success and acknowledges the package in one statement (record_success).
        task.pop("ack_id", None)
        task[SUCCESS_KEY] = success
    elif _func_path(func) == RUN_FUNC and not task.get("success", True):
        # run_execute records every outcome of the task itself; it raises only when it could not record
        # (the database was unreachable) or the tenant is gone (recorded failed first). Not acknowledged,
        # the package comes back after its lease and the run's row decides again, instead of the run
        # staying `queued` with its package deleted.
        task.pop("ack_id", None)


@receiver(post_execute, dispatch_uid="tasks.record_success")
def record_success_in_monitor(sender, task, **kwargs):
    """In the cluster's monitor: write the success a worker left in its result package (see Delivery)."""
    success = task.pop(SUCCESS_KEY, None)
    if success is None:
        return
    from tasks.services import record_success

    if transaction.get_autocommit():
        db.close_old_connections()  # the monitor lives for days; replace a connection the server closed
    try:
        record_success(**success)
    except Exception:
        # Not recorded and not acknowledged: the package comes back after its lease and the run's claim
        # records this attempt as lost and runs it again.
        logger.exception("Could not record the success of task run %s", success.get("run_id"))
