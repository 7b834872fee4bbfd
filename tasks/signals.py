"""django-q2 signal receivers: plain tasks get a tenant context, every task a clean schema, and the engine its delivery.

Found on this machine: django-q2 tasks always start in whatever schema the
worker's connection was left in, and a task that switches schema leaves the
worker there for every later task. These receivers carry the submitter's
schema in the package and put the worker back in public around every task. They record nothing: a run's
outcome is recorded by tasks.engine (a success where the broker acknowledges
its package, tasks.engine.delivery).
"""

from __future__ import annotations

import logging

from django.db import connection
from django.dispatch import receiver
from django_q.signals import post_execute_in_worker, post_spawn, pre_enqueue, pre_execute

from tasks.engine import workers
from tasks.engine.broker import RUN_FUNC, TENANT_KEY
from tasks.engine.delivery import Delivery
from tasks.engine.watchdog import watchdog

logger = logging.getLogger("tasks")

OUR_FUNCS = {RUN_FUNC, "tasks.runner.run_in_schema", "tasks.runner.fire_schedule"}


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
    Delivery.begin(task=task)  # the claim the package carries in, the acknowledgement it carries out


@receiver(post_execute_in_worker, dispatch_uid="tasks.back_to_public")
def back_to_public(sender, func, task, **kwargs):
    connection.set_schema_to_public()
    Delivery.end()


@receiver(post_spawn, dispatch_uid="tasks.worker_spawned")
def worker_spawned(sender, proc_name, **kwargs):
    """In a new cluster worker: record it and start its heartbeat (worker health, tasks.engine.workers)."""
    try:
        workers.worker_started(name=proc_name)
    except Exception:
        logger.exception("Could not record worker %s", proc_name)
    watchdog.start()
