#!/usr/bin/env python
"""The no-op migration check, the migration summary and one AddField rollout at growing schema counts.

    BENCH_SIZES=100,1000,3000 .venv/bin/python bench/migration_check.py

At each size (the schemas grow in place, cloned as bench/migrations.py clones them: pg_dump of one migrated
tenant schema replayed by psql, tenant, domain and ledger rows in bulk) it prints, as totals, per schema and
as the ratio to the first size:
  * `rollout` with nothing pending (the no-op check, through the management command, as an operator runs it);
  * `migration_status` (the full drift report: pending, changed, gone, missing tables and columns);
  * the migration summary (`ledger_summary`, the operator admin's summary page's computation, uncached) and the
    summary page itself (server time, Django's test client, cache cleared before each sample);
  * the number of SQL statements of the no-op check (it must not grow with the schemas);
  * one AddField rolled out to every schema (BENCH_ADDFIELD=0 skips it).
BENCH_PROFILE=1 prints a profile of one no-op `rollout` at each size (pyinstrument when installed in the
environment, else cProfile's top 30 by cumulative time). BENCH_KEEP=1 keeps the database (BENCH_DB, default
courtside_bench_noop) and its clones for the next run, which grows it from what is there instead of starting over.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import migrations as mig  # noqa: E402  bench/migrations.py: the clone helpers

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "100,1000").split(",") if s.strip()]
BENCH_DB = os.environ.get("BENCH_DB", "courtside_bench_noop")
KEEP = os.environ.get("BENCH_KEEP") == "1"
ADDFIELD = os.environ.get("BENCH_ADDFIELD", "1") == "1"
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "3"))
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
APP_ROOT = Path(os.environ.get("BENCH_APP_ROOT", f"/tmp/{BENCH_DB}_app"))
mig.BENCH_DB = BENCH_DB
log = mig.log


def database_exists(kwargs: dict) -> bool:
    import psycopg

    with psycopg.connect(**kwargs) as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone() is not None


def admin_kwargs(config: dict) -> dict:
    kwargs = {"dbname": "postgres", "user": config.get("USER") or "postgres", "autocommit": True}
    for key, name in (("HOST", "host"), ("PORT", "port"), ("PASSWORD", "password")):
        if config.get(key):
            kwargs[name] = config[key]
    return kwargs


class Clones:
    """One migrated template schema, dumped and replayed under new names; kept (not a tenant) for the next size."""

    def __init__(self, config: dict):
        from django.core.management import call_command
        from django.db import connection

        from tenants.services import public_tenant_ensure

        self.config = config
        self.template = mig.TEMPLATE
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version_num")
            self.major = int(cursor.fetchone()[0]) // 10000
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [self.template])
            fresh = cursor.fetchone() is None
        if fresh:
            call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
            public_tenant_ensure(domains=["localhost"])
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE SCHEMA "{self.template}"')
        self.catch_up()

    def catch_up(self) -> None:
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate_schemas", tenant=True, schema_name=self.template, interactive=False, verbosity=0)
        connection.set_schema_to_public()
        env = mig.libpq_env(self.config, BENCH_DB)
        self.dump = subprocess.run([mig.pg_binary("pg_dump", self.major), "--schema", self.template,
                                    "--no-owner", "--no-privileges"],
                                   env=env, capture_output=True, text=True, check=True).stdout

    def count(self) -> int:
        from tenants.models import Tenant

        return Tenant.objects.filter(schema_name__startswith="bench_t").count()

    def grow_to(self, size: int) -> float:
        from django.db import connection

        from schemas.models import MigrationRecord
        from tenants.models import Domain, Plan, Tenant

        have = self.count()
        names = [f"bench_t{i:05d}" for i in range(have, size)]
        if not names:
            return 0.0
        started = time.monotonic()
        mig.clone_schemas(config=self.config, db_name=BENCH_DB, dump=self.dump, template=self.template,
                          major=self.major, names=names)
        plan = Plan.objects.order_by("pk").first()
        tenants = Tenant.objects.bulk_create(
            [Tenant(schema_name=name, name=f"Bench {name}", plan=plan) for name in names], batch_size=1000)
        Domain.objects.bulk_create(
            [Domain(domain=f"{t.schema_name.replace('_', '-')}.bench.localhost", tenant=t, is_primary=True)
             for t in tenants], batch_size=1000)
        # A schema migrated by migrate_schemas is adopted by its post_migrate (schemas.ledger): a clone replayed
        # from pg_dump skips that step, so the bench takes it here (the dump's triggers, a count under the lock).
        from schemas.ledger import applied_state_adopt

        applied_state_adopt(schema_names=names)
        columns = "app_label, name, checksum, applied_at, applied_by, duration_ms, outcome, error, undone_by"
        with connection.cursor() as cursor:  # the ledger rows a migrated tenant has: the summary reads them
            cursor.execute(
                f"INSERT INTO {MigrationRecord._meta.db_table} (schema_name, {columns}) "
                f"SELECT clone, {columns} FROM {MigrationRecord._meta.db_table}, unnest(%s::text[]) AS clone "
                f"WHERE schema_name = %s AND outcome = 'applied'", [names, self.template])
            cursor.execute("ANALYZE")
        return time.monotonic() - started


def timed(func) -> float:
    started = time.monotonic()
    func()
    return time.monotonic() - started


def noop_queries() -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        mig.quiet("rollout")()
    return len(captured.captured_queries)


def summary_page_ms() -> float:
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    from schemas.selectors import ledger_summary_cache_key

    connection.set_schema_to_public()
    operator, _ = get_user_model().objects.get_or_create(username="bench-operator",
                                                         defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(operator)
    samples = []
    for _ in range(SAMPLES + 1):
        cache.delete(ledger_summary_cache_key())  # the page's own computation, not a cached copy
        started = time.perf_counter()
        response = client.get("/admin/schemas/migrationrecord/summary/", HTTP_HOST="localhost")
        samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"summary page answered {response.status_code}")
    return 1000 * statistics.median(samples[1:])


def profile_noop() -> None:
    """One no-op `rollout`, profiled: where the per-schema cost goes."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(mig.quiet("rollout"))
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        return
    profiler = Profiler(interval=0.002)
    with profiler:
        mig.quiet("rollout")()
    print(profiler.output_text(unicode=False, color=False, show_all=False), flush=True)


def measure(size: int, migrations_dir: Path) -> tuple[int, dict]:
    from django.db import connection

    from schemas.selectors import applied_migrations_by_schema, ledger_summary, tenant_schema_names

    count = len(tenant_schema_names())
    if PROFILE:
        profile_noop()
    noop = statistics.median(timed(mig.quiet("rollout")) for _ in range(SAMPLES))
    status = statistics.median(timed(mig.quiet("migration_status")) for _ in range(SAMPLES))
    summary = statistics.median(timed(ledger_summary) for _ in range(SAMPLES))
    figures = {"no-op rollout total (s)": noop, "no-op rollout per schema (ms)": 1000 * noop / count,
               "migration_status total (s)": status, "migration_status per schema (ms)": 1000 * status / count,
               "summary computation (ms)": 1000 * summary, "summary page (ms)": summary_page_ms()}
    settings_debug = connection.force_debug_cursor
    try:
        figures["no-op rollout statements"] = noop_queries()
    finally:
        connection.force_debug_cursor = settings_debug
    if ADDFIELD:
        existing = sorted(p.name for p in migrations_dir.glob("0*.py"))
        number = len(existing) + 1
        name = f"{number:04d}_shot_step{number}"
        previous = existing[-1][:-3]
        (migrations_dir / f"{name}.py").write_text(textwrap.dedent(f"""
            from django.db import migrations, models


            class Migration(migrations.Migration):
                dependencies = [("{mig.APP}", "{previous}")]
                operations = [migrations.AddField("shot", "step{number}", models.IntegerField(default=0))]
        """).lstrip())
        apply = timed(mig.quiet("rollout"))
        applied = applied_migrations_by_schema(tenant_schema_names())
        missing = [s for s, keys in applied.items() if (mig.APP, name) not in keys]
        if missing:
            raise SystemExit(f"rollout missed {len(missing)} schemas, e.g. {missing[:3]}")
        figures.update({"AddField rollout total (s)": apply, "AddField rollout per schema (ms)": 1000 * apply / count})
    return count, figures


def main() -> None:
    config = mig.server_config()
    kwargs = admin_kwargs(config)
    reuse = KEEP and database_exists(kwargs)
    if not reuse:
        mig.create_database(config)
        import shutil

        shutil.rmtree(APP_ROOT, ignore_errors=True)
    migrations_dir = APP_ROOT / mig.APP / "migrations"
    if not migrations_dir.exists():
        mig.write_app(APP_ROOT)
    results: dict[int, dict] = {}
    try:
        mig.setup_django(config, APP_ROOT)
        log(f"== bench/migration_check.py: sizes {SIZES} in database {BENCH_DB}"
            f"{' (reused)' if reuse else ''}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        clones = Clones(config)
        for size in SIZES:
            grew = clones.grow_to(size)
            log(f"-- {size} tenant schemas (grown in {grew:.0f}s); load {os.getloadavg()[0]:.1f}")
            count, figures = measure(size, migrations_dir)
            results[size] = figures
            base = results[SIZES[0]]
            for label, value in figures.items():
                ratio = value / base[label] if base.get(label) else float("nan")
                log(f"  {label:<40} {value:10.2f}   x{ratio:.2f} of {SIZES[0]}")
            if ADDFIELD:
                clones.catch_up()
    finally:
        from django.db import connections

        try:
            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        if not KEEP:
            mig.drop_database(kwargs)


if __name__ == "__main__":
    main()
