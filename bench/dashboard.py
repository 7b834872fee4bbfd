#!/usr/bin/env python
"""Server time of the operator's dashboard (GET /admin/) with 1,000 tenants, against Django's stock admin index.

In a database of its own (courtside_bench_dashboard): BENCH_TENANTS (1,000)
customer tenants across the four plans, a tenth suspended, each with 30 days
of usage-ledger rows (calls and refusals), every tenant migration recorded in
the migration ledger for each (one schema with a changed checksum, one missing
the latest migration), 5,000 task runs in every state, 20 registered service
instances (two critical) and 200 configuration changes. Tenant rows are
written with bulk_create, so no schema is created: the dashboard reads no
tenant schema, only the public tables. GET /admin/ through Django's test
client in-process (URL routing, middleware, session, template rendering: the
whole server side), ROUNDS rounds alternating with the baseline, the same
site's index rendered by Django's stock AdminSite.index (the app list alone).
Prints p50/p95 of each, the number of SQL statements of the dashboard, and
the ratio dashboard/stock. Target: dashboard p95 <= 300 ms.

    .venv/bin/python bench/dashboard.py
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time

from common import describe, percentile, setup_django

TENANTS = int(os.environ.get("BENCH_TENANTS", "1000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "30"))


def seed() -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.utils import timezone

    from configuration.models import ConfigChange
    from registry.models import HealthCheck, ServiceInstance
    from schemas.graph import apps_for, load_graph
    from schemas.models import MigrationRecord
    from tasks.models import Status, TaskRun
    from tenants import services as tenant_services
    from tenants.models import Plan, Tenant, UsageDay

    tenant_services.public_tenant_ensure(domains=["localhost", "127.0.0.1"])
    if not User.objects.filter(username="bench-operator").exists():
        User.objects.create_superuser("bench-operator", "op@example.com", "bench-pass-123")
    if Tenant.objects.filter(schema_name__startswith="dash").count() >= TENANTS:
        return
    started = time.monotonic()
    rng = random.Random(17)
    plans = list(Plan.objects.all())
    Tenant.objects.bulk_create([
        Tenant(schema_name=f"dash{i:05d}", name=f"Dashboard tenant {i}", plan=plans[i % len(plans)],
               status=Tenant.Status.SUSPENDED if i % 10 == 0 else Tenant.Status.ACTIVE)
        for i in range(TENANTS)], batch_size=1000)
    tenants = list(Tenant.objects.filter(schema_name__startswith="dash"))
    today = timezone.now().astimezone(dt.UTC).date()
    UsageDay.objects.bulk_create([
        UsageDay(tenant=t, date=today - dt.timedelta(days=d), api_calls=rng.randint(0, 5000),
                 refused_daily_quota=rng.randint(0, 3), refused_burst=rng.randint(0, 2))
        for t in tenants for d in range(30)], batch_size=5000)
    graph = load_graph()
    tenant_apps = set(apps_for("__tenant__"))
    keys = [k for k in graph.ordered if k[0] in tenant_apps]
    now = timezone.now()
    records = []
    for index, tenant in enumerate(tenants):
        for app, name in keys[:-1] if index == 1 else keys:
            checksum = "0" * 64 if index == 2 and (app, name) == keys[0] else graph.checksum((app, name))
            records.append(MigrationRecord(schema_name=tenant.schema_name, app_label=app, name=name,
                                           checksum=checksum, applied_at=now))
    MigrationRecord.objects.bulk_create(records, batch_size=5000)
    statuses = [Status.QUEUED, Status.RUNNING, Status.SUCCEEDED, Status.SUCCEEDED, Status.FAILED, Status.CANCELLED]
    TaskRun.objects.bulk_create([
        TaskRun(name="system.noop", tenant=tenants[i % len(tenants)], schema_name=tenants[i % len(tenants)].schema_name,
                priority=i % 4, status=statuses[i % len(statuses)],
                finished_at=now - dt.timedelta(minutes=i % 300) if statuses[i % len(statuses)] in
                (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED) else None)
        for i in range(5000)], batch_size=5000)
    for i in range(20):
        instance = ServiceInstance.objects.create(service_id=f"bench-{i}", name=f"svc{i % 4}", host="bench.internal",
                                                  port=9000 + i, status="critical" if i < 2 else "passing")
        HealthCheck.objects.create(instance=instance, name="ttl", kind="ttl", status=instance.status,
                                   output="no heartbeat" if i < 2 else "")
    ConfigChange.objects.bulk_create([ConfigChange(key="api.page_size", version=i + 1, changed_by="bench")
                                      for i in range(200)])
    with connection.cursor() as cursor:  # as autovacuum would after a bulk load: plans need the row counts
        cursor.execute("ANALYZE")
    print(f"seeded {TENANTS} tenants, {len(records)} ledger rows in {time.monotonic() - started:.1f}s")


def main() -> None:
    setup_django(os.environ.get("BENCH_DB", "courtside_bench_dashboard"))  # a database of its own per checkout
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from backoffice import admin_sites
    from backoffice.admin_sites import OperatorAdminSite

    seed()
    from django.contrib.auth.models import User

    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.get(username="bench-operator"))

    def timed(stock: bool) -> float:
        # The baseline is Django's own index (template, app list) on the same site, URLs and middleware.
        OperatorAdminSite.index_template = None if stock else "admin/operator_index.html"
        admin_sites.dashboard_context = (lambda **kwargs: {}) if stock else original_context
        started = time.perf_counter()
        response = client.get("/admin/")
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.status_code
        assert (b"courtside-dashboard" in response.content) != stock
        return elapsed

    original_context = admin_sites.dashboard_context
    for stock in (False, True):  # warm both: templates, graph, connections
        timed(stock)
    dashboard, baseline = [], []
    for _ in range(ROUNDS):
        dashboard.append(timed(False))
        baseline.append(timed(True))
    admin_sites.dashboard_context, OperatorAdminSite.index_template = original_context, "admin/operator_index.html"
    with CaptureQueriesContext(connection) as queries:
        client.get("/admin/")
    statements = [q for q in queries.captured_queries if not q["sql"].startswith("SET search_path")]
    print(f"dashboard GET /admin/ with {TENANTS} tenants: {describe(dashboard)}   ({len(statements)} SQL statements)")
    print(f"stock Django admin index (baseline):        {describe(baseline)}")
    ratio = percentile(dashboard, 0.5) / percentile(baseline, 0.5)
    p95 = percentile(dashboard, 0.95) * 1000
    print(f"ratio dashboard/stock (p50): {ratio:.1f}x   dashboard p95 {p95:.0f} ms "
          f"({'within' if p95 <= 300 else 'OVER'} the 300 ms budget)")


if __name__ == "__main__":
    main()
