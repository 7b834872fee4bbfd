#!/usr/bin/env python
"""Hops: how many times one tenant API request and one task cross from one of our modules into another.

A reader following a request or a task through the code jumps every time the
call goes from one module of ours into another; this counts those jumps with
sys.setprofile (library code, Django's included, is walked through but not
counted: a call from our module A through Django into our module B is one hop,
A -> B). Printed per path: hops, distinct modules, and the modules entered more
than once (re-entries make a path hard to follow).

1. A tenant API request: Host header to response, through the WSGI handler and
   every middleware (Django's test client, in-process): GET /api/v1/players/
   ?search=james on a tenant host with an API key.
2. A task: submit (tasks API service) to the progress bar (the admin's
   progress poll, the JSON its progress bars read), with the cluster's part run in this process the way a
   django-q2 worker and monitor run it (dequeue, the package's signals, the
   run function, the acknowledgement).

In a database of its own (courtside_bench_hops). Run before and after a
restructure: `.venv/bin/python bench/hops.py`.
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

from common import ROOT, setup_django

OUR_PACKAGES = ("backoffice", "core", "tenants", "league", "tasks", "services", "registry", "schemas",
                "configuration", "security", "nba_mcp")


def our_module(filename: str) -> str | None:
    try:
        relative = Path(filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if relative.parts[0] not in OUR_PACKAGES or "migrations" in relative.parts:
        return None
    return ".".join(relative.with_suffix("").parts).removesuffix(".__init__")


class HopCounter:
    """Counts calls whose nearest calling frame of ours is in another module of ours."""

    def __init__(self):
        self.hops = 0
        self.entries: collections.Counter = collections.Counter()
        self.path: list[str] = []
        self._modules: dict[str, str | None] = {}

    def _module(self, frame) -> str | None:
        filename = frame.f_code.co_filename
        if filename not in self._modules:
            self._modules[filename] = our_module(filename)
        return self._modules[filename]

    def profile(self, frame, event, arg):
        if event != "call":
            return
        module = self._module(frame)
        if module is None:
            return
        caller = frame.f_back
        while caller is not None and self._module(caller) is None:
            caller = caller.f_back
        previous = self._module(caller) if caller is not None else None
        if previous != module:
            self.hops += 1
            self.entries[module] += 1
            self.path.append(module)

    def __enter__(self):
        sys.setprofile(self.profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)

    def report(self, title: str) -> None:
        reentered = {module: count for module, count in self.entries.most_common() if count > 1}
        print(f"{title}: {self.hops} hops through {len(self.entries)} modules")
        print("  entered more than once: " + (", ".join(f"{m} x{c}" for m, c in reentered.items()) or "none"))


def main() -> None:
    setup_django("courtside_bench_hops")
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client
    from django_tenants.utils import schema_context

    from tenants import services as tenant_services
    from tenants.models import Tenant

    tenant_services.public_tenant_ensure()
    tenant = Tenant.objects.filter(schema_name="benchhops").first() or tenant_services.tenant_create(
        name="Bench hops", schema_name="benchhops", plan="ENTERPRISE")
    call_command("migrate_schemas", schema_name="benchhops", interactive=False, verbosity=0)
    with schema_context("benchhops"):
        from league.models import Team

        if not Team.objects.exists():
            call_command("load_nba_reference", verbosity=0)
    _, raw_key = tenant_services.api_key_create(tenant=tenant, name="hops", scope="write")
    client = Client(HTTP_HOST="benchhops.localhost", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")
    path = "/api/v1/players/?search=james"
    client.get(path + "&warm=1")  # imports, caches and connections warm, as in a running server

    with HopCounter() as request_hops:
        response = client.get(path + "&probe=1")  # a query string of its own: computed, not a cache hit
    assert response.status_code == 200, response.content[:300]
    request_hops.report("tenant API request (Host header to response)")

    from django.db import connection

    connection.set_schema_to_public()  # the tenant request left the connection in the tenant's schema
    users = get_user_model().objects
    operator = users.filter(username="hops-operator").first() or users.create_superuser(
        "hops-operator", "hops@example.invalid", "hops-pass-word")
    admin = Client(HTTP_HOST="localhost")
    admin.force_login(operator)
    task_path(tenant, admin)


def _run_like_the_cluster() -> None:
    """What a django-q2 pusher, worker and monitor do with our packages, in this process."""
    from django_q.signals import post_execute, post_execute_in_worker, pre_execute
    from django_q.signing import SignedPackage

    from tasks.engine.broker import get_task_broker

    broker = get_task_broker()
    for ack_id, payload in broker.dequeue() or []:
        task = SignedPackage.loads(payload)
        task["ack_id"] = ack_id
        func = task["func"]
        pre_execute.send(sender="django_q", func=func, task=task)
        module, name = func.rsplit(".", 1)
        task["result"] = getattr(__import__(module, fromlist=[name]), name)(*task["args"], **task["kwargs"])
        task["success"] = True
        post_execute_in_worker.send(sender="django_q", func=func, task=task)
        post_execute.send(sender="django_q", task=task)
        if task.get("ack_id") is not None:
            broker.acknowledge(task["ack_id"])


def task_path(tenant, admin) -> None:
    from tasks import actions as task_actions

    warm = task_actions.task_submit(name="system.noop", tenant=tenant, submitted_by="hops")
    _run_like_the_cluster()
    admin.get(f"/admin/tasks/taskrun/progress/?id={warm.pk}")
    with HopCounter() as task_hops:
        run = task_actions.task_submit(name="system.noop", tenant=tenant, submitted_by="hops")
        _run_like_the_cluster()
        page = admin.get(f"/admin/tasks/taskrun/progress/?id={run.pk}")  # what the progress bars poll
    assert page.status_code == 200, (page.status_code, page.get("Location"))
    run.refresh_from_db()
    assert run.status == "succeeded", run.status
    task_hops.report("task (submit to the admin's progress)")


if __name__ == "__main__":
    main()
