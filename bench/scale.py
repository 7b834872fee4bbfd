#!/usr/bin/env python
"""Scale: the same figures at 100, 1,000 and 10,000 tenant schemas, each beside the figure at 100.

    BENCH_SIZES=100,1000,10000 .venv/bin/python bench/scale.py

At each size (the schemas grow in place from one size to the next) it prints:
  * sign-up from the pool, p50/p95 (the pool refilled between samples, untimed);
  * the no-op migration check (`rollout` with nothing pending) and one AddField rolled out to every
    schema, as totals and per schema;
  * tenant API p50/p99 of a mixed read load over 50 random tenants, and the same load spread over every
    tenant (each request on another schema: the catalog-cache worst case);
  * PostgreSQL backend memory after the spread load: the serving backend's own memory contexts
    (`pg_backend_memory_contexts`) and the RSS of every backend of the bench database;
  * the operator pages that list tenants, the migration summary and the dashboard: server time per page (the
    summary twice: as served, from its cache, and uncached, its cache entry deleted before each sample).
and the ratio of each figure to the figure at 100 tenants (the ratio is the result; the target is <= 1.5x,
per schema for the migration figures).

Where the requests are served: the tenant API load goes through the production server, gunicorn as
deploy/gunicorn.conf.py runs it (BENCH_WEB_WORKERS=3 processes x BENCH_WEB_THREADS=4 threads, DEBUG off), its
database connections through a transaction-pooling PgBouncer (tests/pgbouncer.py, BENCH_POOL_SIZE=8 server
connections), from BENCH_CLIENTS=6 keep-alive clients at once; each request's time is its round trip. The
server's stdout and stderr go to a log file (bench/serving.py); a failed request prints its tail. The
operator pages are served in this process by Django's test client (server time: routing, authentication, the
view and its queries). The schemas are built as bench/migrations.py builds them
(pg_dump of one migrated schema replayed by psql; tenant and domain rows in bulk), in a database of its
own (BENCH_DB, default courtside_bench_scale) on the server of DATABASE_URL or the embedded one,
dropped at the end. Each size's build and measuring time is printed, and the next step's (10,000)
extrapolated from them.

Needs PgBouncer (Debian's, `make pgbouncer` installs it): the API load goes through it. The bench says so at
its start and exits at once, before building anything, when it is missing. The API load fails fast: the first
5xx, connection error or timeout (BENCH_REQUEST_TIMEOUT=30 s per request) stops every client and exits with
the request, its error and the server log's tail, instead of waiting out every other request's timeout.

Iterating at one size without rebuilding it (opt-in; the default run builds and drops as above):
  BENCH_KEEP=1      keep the database and the probe app's directory (/tmp/bench_scale_<BENCH_DB>, its migrations
                    and results.json: every size's figures) at the end instead of dropping them;
  BENCH_REUSE=1     start from that kept database: no drop, no template rebuild; grow from the tenant schemas it
                    has (a size at or under them is measured as it is), the next AddField numbered after the kept
                    migrations, ratios against the kept results.json's first size when this run lacks it;
  BENCH_MEASURE=0   grow only (no figures): the long build runs outside /work/wt/bench.lock, the measuring run
                    (BENCH_REUSE=1) under it;
  BENCH_RESULTS=path       write every size's figures there as JSON (default with KEEP/REUSE: the kept results.json);
  BENCH_BASE_RESULTS=path  take the ratios' base figures (the smallest size) from such a file.

PostgreSQL settings 10,000 schemas need (the embedded server sets 1024 and 300, core/embedded_db.py):
  max_locks_per_transaction >= 256: a check or a dump that touches every schema's tables in one
  transaction takes one lock per relation; max_connections stays small behind a pooler.
"""

from __future__ import annotations

import importlib.util
import os
import random
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "100,1000").split(",") if s.strip()]
BENCH_DB = os.environ.get("BENCH_DB", "courtside_bench_scale")
SIGNUP_SAMPLES = int(os.environ.get("BENCH_SIGNUPS", "7"))
API_REQUESTS = int(os.environ.get("BENCH_API_REQUESTS", "300"))
HOT_TENANTS = 50
WEB_WORKERS = int(os.environ.get("BENCH_WEB_WORKERS", "3"))
WEB_THREADS = int(os.environ.get("BENCH_WEB_THREADS", "4"))
POOL_SIZE = int(os.environ.get("BENCH_POOL_SIZE", "8"))  # PgBouncer's server connections per database
CLIENTS = int(os.environ.get("BENCH_CLIENTS", "6"))
REQUEST_TIMEOUT = float(os.environ.get("BENCH_REQUEST_TIMEOUT", "30"))  # seconds; the first timeout ends the load
KEEP = os.environ.get("BENCH_KEEP", "0") == "1"
REUSE = os.environ.get("BENCH_REUSE", "0") == "1"
MEASURE = os.environ.get("BENCH_MEASURE", "1") != "0"
RUN_TAG = int(time.time()) % 1_000_000
KEPT_ROOT = Path(tempfile.gettempdir()) / f"bench_scale_{BENCH_DB}"


def _load_migrations_bench():
    spec = importlib.util.spec_from_file_location("bench_migrations_helpers", ROOT / "bench" / "migrations.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.BENCH_DB = BENCH_DB
    return module


mig = _load_migrations_bench()
log = mig.log


def _helper(name: str):
    """tests/pgbouncer.py or bench/serving.py, loaded from its file: never by putting tests/ on sys.path, where its
    packages named like the project's apps (tests/schemas, tests/tenants) would shadow them."""
    if name in sys.modules:
        return sys.modules[name]
    folder = "tests" if name == "pgbouncer" else "bench"
    spec = importlib.util.spec_from_file_location(name, ROOT / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def host_of(schema_name: str) -> str:
    """Schema names may hold underscores; host names may not."""
    return f"{schema_name.replace('_', '-')}.bench.localhost"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


class SchemaFactory:
    """One migrated template schema (reference data included), dumped once and replayed under new names."""

    def __init__(self, config: dict, *, reuse: bool = False):
        from django.core.management import call_command
        from django.db import connection

        from tenants.provisioning import schema_seeds_load
        from tenants.services import public_tenant_ensure

        self.config = config
        self.template = mig.TEMPLATE
        if reuse:  # the kept database: its template and its bench_t* schemas as they are, public migrated to now
            from tenants.models import Tenant

            call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)

            with connection.cursor() as cursor:
                cursor.execute("SHOW server_version_num")
                self.major = int(cursor.fetchone()[0]) // 10000
            self.count = Tenant.objects.filter(schema_name__startswith="bench_t").count()
            self.catch_up()
            return
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
        public_tenant_ensure(domains=["localhost"])  # the operator site, for the operator pages
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA "{self.template}"')
            cursor.execute("SHOW server_version_num")
            self.major = int(cursor.fetchone()[0]) // 10000
        call_command("migrate_schemas", tenant=True, schema_name=self.template, interactive=False, verbosity=0)
        schema_seeds_load(schema_name=self.template)
        connection.set_schema_to_public()
        self.refresh_dump()
        self.count = 0

    def refresh_dump(self) -> None:
        import subprocess

        env = mig.libpq_env(self.config, BENCH_DB)
        self.dump = subprocess.run([mig.pg_binary("pg_dump", self.major), "--schema", self.template,
                                    "--no-owner", "--no-privileges"],
                                   env=env, capture_output=True, text=True, check=True).stdout

    def grow_to(self, size: int) -> list[str]:

        from tenants.models import Domain, Plan, Tenant

        names = [f"bench_t{i:05d}" for i in range(self.count, size)]
        if not names:
            log(f"  {self.count} tenant schemas kept (BENCH_REUSE): none to add for {size}")
            return names
        started = time.monotonic()
        mig.clone_schemas(config=self.config, db_name=BENCH_DB, dump=self.dump, template=self.template,
                          major=self.major, names=names)
        plan = Plan.objects.get(code="ENTERPRISE")
        tenants = Tenant.objects.bulk_create(
            [Tenant(schema_name=name, name=f"Bench {name}", plan=plan) for name in names], batch_size=1000)
        Domain.objects.bulk_create(
            [Domain(domain=host_of(t.schema_name), tenant=t, is_primary=True) for t in tenants],
            batch_size=1000)
        # A schema migrated by migrate_schemas is adopted by its post_migrate (schemas.ledger): a clone replayed
        # from pg_dump skips that step, so the bench takes it here (the dump's triggers, a count under the lock).
        from schemas.ledger import applied_state_adopt

        applied_state_adopt(schema_names=names)
        self.copy_ledger(names)
        self.count = size
        log(f"  grew to {size} tenant schemas (+{len(names)}) in {time.monotonic() - started:.1f}s")
        return names


    def catch_up(self) -> None:
        """Migrate the template (not a tenant: rollouts skip it) to what the tenants now have, and dump it again."""
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate_schemas", tenant=True, schema_name=self.template, interactive=False, verbosity=0)
        connection.set_schema_to_public()
        self.refresh_dump()

    def copy_ledger(self, names: list[str]) -> None:
        """The template's ledger rows (public), once per clone: the migration summary and the dashboard read the
        ledger, so a clone must have one as a migrated tenant does."""
        from django.db import connection

        from schemas.models import MigrationRecord

        columns = "app_label, name, checksum, applied_at, applied_by, duration_ms, outcome, error, undone_by"
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {MigrationRecord._meta.db_table} (schema_name, {columns}) "
                f"SELECT clone, {columns} FROM {MigrationRecord._meta.db_table}, unnest(%s::text[]) AS clone "
                f"WHERE schema_name = %s AND outcome = 'applied'", [names, self.template])


def measure_signup(size: int) -> dict:
    from django.db import connection

    from tenants.provisioning import pool_add
    from tenants.services import tenant_create

    seconds = []
    for sample in range(SIGNUP_SAMPLES):
        pool_add()  # untimed: the pool is refilled between samples
        connection.set_schema_to_public()
        started = time.monotonic()
        schema_name = f"signup_{size}_{sample}" + (f"_{RUN_TAG}" if REUSE else "")  # a reused db has the first's
        tenant = tenant_create(name=f"Signup {schema_name}", schema_name=schema_name, plan="FREE")
        seconds.append(time.monotonic() - started)
        assert tenant.schema_name == schema_name
        connection.set_schema_to_public()
    return {"signup p50 (s)": percentile(seconds, 0.5), "signup p95 (s)": percentile(seconds, 0.95)}


def measure_migrations(size: int, migrations_dir: Path, step: int) -> dict:
    from schemas.selectors import applied_migrations_by_schema, tenant_schema_names

    noop = _timed(mig.quiet("rollout"))
    name = f"{step + 1:04d}_shot_step{step}"
    previous = "0001_initial" if step == 1 else f"{step:04d}_shot_step{step - 1}"
    (migrations_dir / f"{name}.py").write_text(textwrap.dedent(f"""
        from django.db import migrations, models


        class Migration(migrations.Migration):
            dependencies = [("{mig.APP}", "{previous}")]
            operations = [migrations.AddField("shot", "step{step}", models.IntegerField(default=0))]
    """).lstrip())
    apply = _timed(mig.quiet("rollout"))
    schemas = tenant_schema_names()
    applied = applied_migrations_by_schema(schemas)
    missing = [s for s in schemas if (mig.APP, name) not in applied[s]]
    if missing:
        raise SystemExit(f"rollout missed {len(missing)} schemas, e.g. {missing[:3]}")
    count = len(schemas)
    return {"no-op check total (s)": noop, "no-op check per schema (ms)": 1000 * noop / count,
            "AddField rollout total (s)": apply, "AddField rollout per schema (ms)": 1000 * apply / count}


def _timed(func) -> float:
    started = time.monotonic()
    func()
    return time.monotonic() - started


class ApiLoad:
    """A mixed read load of tenant API requests through the production server: gunicorn as deploy/gunicorn.conf.py
    runs it (WEB_CONCURRENCY workers x WEB_THREADS threads), its connections through a transaction-pooling
    PgBouncer (tests/pgbouncer.py), CLIENTS keep-alive clients at once."""

    PATHS = ["/api/v1/teams/", "/api/v1/players/?search=james", "/api/v1/players/", "/api/v1/players/?page=2"]

    def __init__(self):
        self.keys: dict[str, str] = {}
        self.server = self.bouncer = None
        self.port = 0

    def key_for(self, schema_name: str) -> str:
        if schema_name not in self.keys:
            from tenants.models import Tenant
            from tenants.services import api_key_create

            tenant = Tenant.objects.get(schema_name=schema_name)
            _key, raw = api_key_create(tenant=tenant, name="bench")
            self.keys[schema_name] = raw
        return self.keys[schema_name]

    def start(self) -> None:
        from django.db import connection

        from configuration import config
        from core.embedded_db import url_from_settings

        serving = _helper("serving")
        PgBouncer = _helper("pgbouncer").PgBouncer

        config.set("api.rate_limit_per_minute", 1_000_000, changed_by="bench/scale.py")  # counted, never reached
        settings_dict = connection.settings_dict
        options = settings_dict.get("OPTIONS", {})
        self.bouncer = PgBouncer(host=str(settings_dict.get("HOST") or options.get("host") or "127.0.0.1"),
                                 port=int(settings_dict.get("PORT") or options.get("port") or 5432),
                                 user=settings_dict.get("USER") or "postgres", pool_size=POOL_SIZE).start()
        env = {**os.environ, "DATABASE_URL": self.bouncer.url(BENCH_DB),
               "DATABASE_DIRECT_URL": url_from_settings(settings_dict), "DATABASE_POOL_MODE": "transaction",
               "LOG_LEVEL": "WARNING", "DEBUG": "0", "DJANGO_SETTINGS_MODULE": "backoffice.settings.local",
               "COURTSIDE_SERVICES_SELF_REGISTER": "0"}
        self.server, self.port = serving.start("gunicorn", env, workers=WEB_WORKERS, threads=WEB_THREADS)

    def stop(self) -> None:
        if self.server is not None:
            _helper("serving").stop(self.server)
        if self.bouncer is not None:
            self.bouncer.stop()
        self.server = self.bouncer = None

    def run(self, schema_names: list[str], requests: int) -> dict:
        import http.client
        import threading
        from concurrent.futures import ThreadPoolExecutor

        from django.db import connection

        rng = random.Random(len(schema_names))
        plan = [(schema_names[i % len(schema_names)], rng.choice(self.PATHS)) for i in range(requests)]
        rng.shuffle(plan)
        for schema_name in {s for s, _ in plan}:
            self.key_for(schema_name)
        connection.set_schema_to_public()
        connection.close()  # the bench's own backend is idle while the server is loaded
        broken = threading.Event()  # set at the first 5xx or connection error: every client stops there

        def client(share: list[tuple[str, str]]) -> tuple[list[float], list[str]]:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
            seconds, failures = [], []
            try:
                for schema_name, path in share:
                    if broken.is_set():
                        break
                    started = time.perf_counter()
                    try:
                        conn.request("GET", path, headers={"Host": host_of(schema_name),
                                                           "Authorization": f"Api-Key {self.keys[schema_name]}"})
                        response = conn.getresponse()
                        body = response.read()
                    except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out
                        failures.append(f"{type(error).__name__}: {error} on {path} for {schema_name} after "
                                        f"{time.perf_counter() - started:.1f}s")
                        broken.set()
                        break
                    seconds.append(time.perf_counter() - started)
                    if response.status != 200:
                        failures.append(f"{response.status} {path} for {schema_name} {body[:200]!r}")
                        if response.status >= 500:
                            broken.set()
                            break
            finally:
                conn.close()
            return seconds, failures

        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            done = list(pool.map(client, [plan[i::CLIENTS] for i in range(CLIENTS)]))
        seconds = [s for part, _ in done for s in part]
        failures = [f for _, part in done for f in part]
        if failures:
            serving = _helper("serving")
            print(serving.log_tail(self.server), file=sys.stderr, flush=True)
            alive = "running" if self.server.poll() is None else f"exited with {self.server.returncode}"
            why = "stopped at the first 5xx or connection error" if broken.is_set() else "non-200 answers"
            raise SystemExit(f"tenant API load failed: {len(failures)} failure(s), {len(seconds)} answered of "
                             f"{requests} planned ({why}), e.g. {failures[0]}; the server is {alive}, its log: "
                             f"{self.server.log_path}")
        return {"p50 (ms)": 1000 * percentile(seconds, 0.5), "p99 (ms)": 1000 * percentile(seconds, 0.99)}


def backend_memory() -> dict:
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        try:
            cursor.execute("SELECT sum(total_bytes) FROM pg_backend_memory_contexts")
            own = int(cursor.fetchone()[0] or 0)
        except Exception:  # noqa: BLE001  the view exists from PostgreSQL 14
            own = 0
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        pids = [row[0] for row in cursor.fetchall()]
    rss = 0
    for pid in pids:
        try:
            rss += psutil.Process(pid).memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass  # a server on another machine or user: only the contexts figure then
    return {"serving backend contexts (MiB)": own / 2**20, "backends RSS (MiB)": rss / 2**20,
            "backends": len(pids)}


def operator_pages() -> dict:
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client

    from schemas.selectors import ledger_summary_cache_key

    connection.set_schema_to_public()
    user_model = get_user_model()
    operator, _ = user_model.objects.get_or_create(username="bench-operator",
                                                   defaults={"is_staff": True, "is_superuser": True})
    client = Client()
    client.force_login(operator)
    pages = {"tenant list": "/admin/tenants/tenant/",
             "migration summary": "/admin/schemas/migrationrecord/summary/",
             "migration matrix": "/admin/schemas/migrationrecord/matrix/", "dashboard": "/admin/"}
    figures = {}

    def uncached_summary() -> None:  # the summary's own cache entry only: cache.clear() would log the client out
        cache.delete(ledger_summary_cache_key())

    for label, path, before in [*((label, path, None) for label, path in pages.items()),
                                ("migration summary uncached", pages["migration summary"], uncached_summary)]:
        client.get(path, HTTP_HOST="localhost")  # warm: first-request costs are not the page's
        samples = []
        for _ in range(3):
            if before is not None:
                before()
            started = time.perf_counter()
            response = client.get(path, HTTP_HOST="localhost")
            samples.append(time.perf_counter() - started)
        if response.status_code != 200:
            raise SystemExit(f"{path} answered {response.status_code}")
        figures[f"{label} (ms)"] = 1000 * statistics.median(samples)
    return figures


def extrapolate(grow: dict[int, float], measure: dict[int, float], target: int) -> str:
    """The time to grow from the largest size measured to `target` schemas and measure there: growing at the
    last size's seconds per new schema, measuring on the line through the measured sizes (both grow with the
    number of schemas)."""
    sizes = sorted(size for size in grow if size in measure)  # a size that failed mid-way is left out
    if not sizes:
        return "n/a"
    last, previous = sizes[-1], ([0] + sizes)[-2]
    per_schema = grow[last] / (last - previous)
    if len(sizes) > 1:
        slope = (measure[last] - measure[sizes[0]]) / (last - sizes[0])
        measured = measure[last] + slope * (target - last)
    else:
        measured = measure[last] * target / last
    seconds = per_schema * (target - last) + measured
    return (f"{seconds / 60:.0f} min more for the {target} step (growing {per_schema:.2f} s/schema, "
            f"measuring {measured / 60:.0f} min)")


def _admin_kwargs(config: dict) -> dict:
    """The maintenance connection's arguments, as mig.create_database makes them (without dropping anything)."""
    kwargs = {"dbname": "postgres", "user": config.get("USER") or "postgres", "autocommit": True}
    for key in ("HOST", "PORT", "PASSWORD"):
        if config.get(key):
            kwargs[key.lower()] = config[key]
    return kwargs


def require_pgbouncer() -> None:
    """The API load goes through PgBouncer: say so first, and stop before building anything when it is missing."""
    BINARY = _helper("pgbouncer").BINARY

    log(f"== bench/scale.py needs PgBouncer (the tenant API load goes through it; `make pgbouncer` installs it): "
        f"{BINARY}")
    if not (os.path.isfile(BINARY) and os.access(BINARY, os.X_OK)):
        raise SystemExit(f"bench/scale.py: PgBouncer is not installed ({BINARY} not found): run `make pgbouncer` "
                         f"first. Nothing was built.")


def main() -> None:
    import json

    require_pgbouncer()
    config = mig.server_config()
    if REUSE:
        if not (KEPT_ROOT / mig.APP).is_dir():
            raise SystemExit(f"BENCH_REUSE=1: no kept run at {KEPT_ROOT} (run once with BENCH_KEEP=1 first)")
        admin_kwargs = _admin_kwargs(config)
        app_root = KEPT_ROOT
    else:
        admin_kwargs = mig.create_database(config)
        if KEEP:
            import shutil

            shutil.rmtree(KEPT_ROOT, ignore_errors=True)
            KEPT_ROOT.mkdir(parents=True)
            app_root = KEPT_ROOT
        else:
            app_root = Path(tempfile.mkdtemp(prefix="bench_scale_"))
    migrations_dir = mig.write_app(app_root)
    kept_results_path = Path(os.environ.get("BENCH_RESULTS") or KEPT_ROOT / "results.json")
    base_path = Path(os.environ.get("BENCH_BASE_RESULTS") or kept_results_path)
    kept_results: dict[int, dict] = {}
    if (REUSE or os.environ.get("BENCH_BASE_RESULTS")) and base_path.exists():
        kept_results = {int(k): v for k, v in json.loads(base_path.read_text()).items()}
    results: dict[int, dict] = {}
    build_times: dict[int, float] = {}  # seconds to grow to each size and measure it
    grow_times: dict[int, float] = {}
    measure_times: dict[int, float] = {}
    try:
        mig.setup_django(config, app_root)
        from django.conf import settings

        settings.TENANT_POOL_SIZE = 0  # the bench refills the pool itself, between samples
        # No registry heartbeat thread in this process: rollout forks its workers, and a fork beside a thread
        # that holds a lock can leave a worker waiting forever.
        settings.SERVICES = {**getattr(settings, "SERVICES", {}), "SELF_REGISTER": False}
        log(f"== bench/scale.py: sizes {SIZES} in database {BENCH_DB}"
            f"{' (kept database reused)' if REUSE else ''}{' (grow only)' if not MEASURE else ''}")
        factory = SchemaFactory(config, reuse=REUSE)
        load = ApiLoad()
        first_step = 1 + len(list(migrations_dir.glob("*_shot_step*.py")))
        for step, size in enumerate(SIZES, start=first_step):
            log(f"-- {size} tenants")
            size_started = time.monotonic()
            factory.grow_to(size)
            grow_times[size] = time.monotonic() - size_started
            if not MEASURE:
                continue
            figures: dict = {}
            results[size] = figures
            base_size = min([*kept_results, *results]) if kept_results else SIZES[0]

            def report(measured: dict, figures: dict = figures, base_size: int = base_size) -> None:
                figures.update(measured)
                base = results.get(base_size) or kept_results.get(base_size, {})
                for label, value in measured.items():
                    ratio = value / base[label] if base.get(label) else float("nan")
                    log(f"  {label:<46} {value:10.2f}   x{ratio:.2f} of {base_size}")

            report(measure_signup(size))
            report(measure_migrations(size, migrations_dir, step))
            factory.catch_up()  # the next size's clones start from the migrations every schema now has
            names = [f"bench_t{i:05d}" for i in range(size)]
            hot = random.Random(size).sample(names, min(HOT_TENANTS, len(names)))
            load.start()
            try:
                load.run(hot, 2 * HOT_TENANTS)  # warm the hot tenants' keys and every worker's caches
                report({f"API over {HOT_TENANTS} tenants {k}": v for k, v in load.run(hot, API_REQUESTS).items()})
                spread = random.Random(size + 1).sample(names, min(API_REQUESTS, len(names)))
                report({f"API spread over all {k}": v for k, v in load.run(spread, API_REQUESTS).items()})
                report(backend_memory())
            finally:
                load.stop()
            report(operator_pages())
            build_times[size] = round(time.monotonic() - size_started, 1)
            measure_times[size] = build_times[size] - grow_times[size]
            log(f"  size {size} built in {grow_times[size]:.0f}s and measured in {measure_times[size]:.0f}s "
                f"({build_times[size]:.0f}s in all)")
    finally:
        from django.db import connections

        log(f"== seconds per size (grow + measure): {build_times}; "
            f"10,000 extrapolated: {extrapolate(grow_times, measure_times, 10_000)}")
        try:
            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        if KEEP or REUSE or os.environ.get("BENCH_RESULTS"):
            merged = {**kept_results, **results}
            kept_results_path.write_text(json.dumps({str(k): v for k, v in sorted(merged.items())}, indent=1))
            log(f"== figures written to {kept_results_path}")
        if KEEP or REUSE:
            log(f"== kept: database {BENCH_DB}, app and results in {KEPT_ROOT} (BENCH_REUSE=1 to measure again)")
        else:
            mig.drop_database(admin_kwargs)
            import shutil

            shutil.rmtree(app_root, ignore_errors=True)


if __name__ == "__main__":
    main()
