#!/usr/bin/env python
"""Tenant provisioning: Courtside's pooled schemas vs stock django-tenants, in the same run.

Creates N tenants (BENCH_TENANTS, default 50) each way, with the project's full
set of tenant apps, in a database of its own (courtside_bench_provisioning):
  * ours: tenants.services.tenant_create, which renames a pre-migrated schema
    from the pool, NBA reference data included (the pool is filled beforehand;
    its cost per schema is printed too, since the cluster pays it in the
    background);
  * stock: a django-tenants Tenant.save() that creates the schema and runs
    every tenant migration, plus its Domain row (no reference data);
  * and, for BENCH_IN_PLACE (default 5) tenants, ours with an empty pool: the
    fallback that migrates and loads the reference data during the sign-up.
Prints p50 and p95 per tenant for each, and the ratio stock/ours of the p50s.
Target: ours p50 <= 100 ms and >= 10x faster than stock.
"""

from __future__ import annotations

import os
import time

from common import describe, percentile, setup_django

N = int(os.environ.get("BENCH_TENANTS", "50"))
IN_PLACE = int(os.environ.get("BENCH_IN_PLACE", "5"))


def say(line: str) -> None:
    # Flushed at once: under a timeout or a pipe the figures must not die in a buffer (they once went missing).
    print(line, flush=True)


def main() -> None:
    say(f"tenant provisioning: {N} tenants each way, {IN_PLACE} in place; migrating the bench database…")
    setup_django("courtside_bench_provisioning")
    from django.db import connection

    from tenants import provisioning, services
    from tenants.models import Domain, Plan, PooledSchema, Tenant

    services.public_tenant_ensure()
    Tenant.objects.filter(schema_name__startswith="bench_").delete()  # drops schemas of an aborted run
    for pooled in PooledSchema.objects.all():
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{pooled.schema_name}" CASCADE')
        pooled.delete()
    plan = Plan.objects.get(code="STARTER")

    say(f"filling the pool with {N} schemas…")
    started = time.perf_counter()
    provisioning.pool_refill(size=N)
    fill_per_schema = (time.perf_counter() - started) / N

    ours, stock = [], []
    for i in range(N):
        t0 = time.perf_counter()
        services.tenant_create(name=f"Bench ours {i}", schema_name=f"bench_ours_{i}", plan=plan)
        ours.append(time.perf_counter() - t0)
        assert not PooledSchema.objects.filter(schema_name=f"bench_ours_{i}").exists()

        t0 = time.perf_counter()
        tenant = Tenant(name=f"Bench stock {i}", schema_name=f"bench_stock_{i}", plan=plan)
        tenant.save(verbosity=0)
        Domain.objects.create(domain=f"bench-stock-{i}.localhost", tenant=tenant, is_primary=True)
        stock.append(time.perf_counter() - t0)

    in_place = []
    for i in range(IN_PLACE):  # the pool is empty by now: each sign-up migrates and seeds its own schema
        t0 = time.perf_counter()
        services.tenant_create(name=f"Bench in place {i}", schema_name=f"bench_in_place_{i}", plan=plan)
        in_place.append(time.perf_counter() - t0)

    say(f"tenant provisioning, {N} tenants each way, same run")
    say(f"  ours  (pooled schema rename, reference data in the pool): {describe(ours)}")
    say(f"  stock (django-tenants, migrations, no reference data): {describe(stock)}")
    if in_place:
        say(f"  ours with an empty pool ({IN_PLACE}: migrations + reference data): {describe(in_place)}")
    say(f"  pool refill cost per schema (background, on the cluster): {fill_per_schema * 1000:.1f} ms")
    say(f"  ratio stock/ours at p50: {percentile(stock, 0.5) / percentile(ours, 0.5):.1f}x")

    for tenant in Tenant.objects.filter(schema_name__startswith="bench_"):
        tenant.delete(force_drop=True)


if __name__ == "__main__":
    main()
