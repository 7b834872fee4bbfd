"""Shared set-up of the benchmarks: a database of their own on the project's server."""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(db_name: str) -> None:
    """Point Django at `db_name` on DATABASE_URL's server (or the embedded one), migrated."""
    db_name += os.environ.get("BENCH_DB_SUFFIX", "")  # two checkouts benched side by side: a database each
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    import psycopg

    url = os.environ.get("DATABASE_URL")
    if not url:
        from core import embedded_db as embedded

        url = embedded.ensure_running()
    base, _, query = url.partition("?")

    def with_db(name: str) -> str:
        return base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")

    admin = psycopg.connect(with_db("postgres").replace("postgres://", "postgresql://", 1), autocommit=True)
    if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name]).fetchone():
        admin.execute(f'CREATE DATABASE "{db_name}"')
    admin.close()
    os.environ["DATABASE_URL"] = with_db(db_name)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings.local")
    os.environ["TENANT_POOL_SIZE"] = "0"

    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def describe(values: list[float]) -> str:
    return (f"p50 {percentile(values, 0.5) * 1000:7.1f} ms   p95 {percentile(values, 0.95) * 1000:7.1f} ms   "
            f"mean {statistics.fmean(values) * 1000:7.1f} ms")
