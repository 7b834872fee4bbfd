"""The operator's day (issue 13): one live deployment, a whole day in order, every seam asserted on the way.

The deployment is what `make run` starts: the web server (gunicorn with
deploy/gunicorn.conf.py, two worker processes) and the task cluster
(`manage.py qcluster`), subprocesses on the test database, each process
registering itself in the service registry with a 3 s TTL.
This process only plays the operator and the tenant, over real HTTP (the
operator API and admin on `localhost`, the tenant's on `celtics.localhost`)
and through `manage.py` commands; it reads the database directly only to look
for leftovers at the end and to sweep the registry as the cluster's health
sweep would, every 0.3 s, so a process that stopped heartbeating turns
critical within the day.

The tenant app whose migration the operator rolls out, `courtside_day`, lives
in a temporary folder (tests/operator_day/settings.py), so nothing is written
into a real app. Run it alone: `pytest -m operator_day -s` prints each step's
time and the day's.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from io import StringIO
from pathlib import Path

import httpx
import psutil
import pytest
from django.core.management import call_command
from django.db import connection

from tests.conftest import database_url, make_user, tenant_host
from tests.operator_day.jobs import NAME as WATCH_TASK

pytestmark = [pytest.mark.operator_day, pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
APP = "courtside_day"
SCHEMA = "celtics"
HOST = tenant_host(SCHEMA)
OPERATOR = ("operator", "operator-pass-word-123")
TENANT_ADMIN = ("admin", "celtics-pass-word-123")
TTL = 3.0  # seconds: the web's and the cluster's self-registration TTL in this deployment
WITHIN = 1.0  # seconds: how soon a configuration change must be live (the promise)
STARTUP = 90  # bounds on waiting for a process to come up, not assertions on speed

APP_FILES = {
    "__init__.py": "",
    "apps.py": """
        from django.apps import AppConfig


        class DayConfig(AppConfig):
            name = "courtside_day"
    """,
    # The task layer discovers every installed app's tasks module: this one registers the day's watch task.
    "tasks.py": "from tests.operator_day import jobs  # noqa: F401\n",
    "migrations/__init__.py": "",
}
MIGRATION = """
    from django.db import migrations


    class Migration(migrations.Migration):
        initial = True
        dependencies = []
        operations = [
            migrations.RunSQL(
                "CREATE TABLE courtside_day_note (id bigserial PRIMARY KEY, body text NOT NULL)",
                reverse_sql="DROP TABLE courtside_day_note",
            ),
        ]
"""


# ------------------------------------------------------------------ the deployment


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Process:
    """One process of the deployment (and its children), in its own process group, logging to a file."""

    def __init__(self, name: str, args: list[str], *, env: dict, log_dir: Path):
        self.name, self.args, self.env = name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> Process:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.args, cwd=ROOT, env=self.env,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.returncode is not None and self._log.closed:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the cluster's leader stops its sentinel and workers in order
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group outlived its leader
        except ProcessLookupError:
            pass
        self.process.wait(timeout=15)
        self._log.close()


def _wait(predicate, *, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _write_app(root: Path) -> Path:
    for relative, source in APP_FILES.items():
        path = root / APP / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
    return root / APP / "migrations"


def _scrub_day_app() -> None:
    """Remove what the throwaway app left in the kept test schemas: its table and its django_migrations rows."""
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute("SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE c.relname = 'django_migrations'")
        for (schema,) in cursor.fetchall():
            cursor.execute(f'DROP TABLE IF EXISTS "{schema}".courtside_day_note')
            cursor.execute(f'DELETE FROM "{schema}".django_migrations WHERE app = %s', [APP])


class RegistryWatch(threading.Thread):
    """Sweeps the registry every 0.3 s (as the cluster's health sweep would) and records our instances' status.

    Each sample is {service name: [status of each instance]}, read straight from the registry's table
    (the sweep is the operator's `manage.py health_sweep`).
    """

    def __init__(self, processes: list[Process]):
        super().__init__(daemon=True)
        self.processes = processes
        self.samples: list[tuple[float, dict[str, list[str]]]] = []
        self.errors: list[str] = []
        self.lapses: list[str] = []
        self._halt = threading.Event()

    def run(self):
        try:
            while not self._halt.is_set():
                call_command("health_sweep", stdout=StringIO())
                pids = self.pids()
                with connection.cursor() as cursor:
                    # Each instance's checks that are not passing, with their output: a lapse says its cause.
                    cursor.execute("SELECT i.name, i.status, "
                                   "coalesce(i.metadata->>'pid', i.metadata->>'sentinel_pid'), "
                                   "i.service_id, now() - i.registered_at, now() - i.last_heartbeat, "
                                   "string_agg(c.name || ' ' || c.status || ' (' || c.output || ')', '; ') "
                                   "FILTER (WHERE c.status <> 'passing') "
                                   "FROM services_serviceinstance i LEFT JOIN services_healthcheck c "
                                   "ON c.instance_id = i.id WHERE i.name IN ('courtside-web', 'courtside-cluster') "
                                   "GROUP BY i.id ORDER BY i.name, i.service_id")
                    sample: dict[str, list[str]] = {}
                    for name, status, pid, service_id, age, silence, failing in cursor.fetchall():
                        if pid is not None and int(pid) in pids:
                            sample.setdefault(name, []).append(status)
                            if status != "passing":
                                self.lapses.append(f"{time.monotonic():.2f} {service_id} {status}: registered "
                                                   f"{age} ago, last heartbeat {silence} ago; {failing}")
                self.samples.append((time.monotonic(), sample))
                self._halt.wait(0.3)
        except Exception as error:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(error))
        finally:
            connection.close()

    def pids(self) -> set[int]:
        """The deployment's processes: the web server, the cluster's leader and its sentinel, workers, ..."""
        found = set()
        for process in self.processes:
            if process.alive():
                found.add(process.process.pid)
                try:
                    found |= {child.pid for child in psutil.Process(process.process.pid).children(recursive=True)}
                except psutil.NoSuchProcess:
                    pass
        return found

    def stop(self):
        self._halt.set()
        if self.is_alive():
            self.join(timeout=30)

    def latest(self) -> dict[str, list[str]]:
        return self.samples[-1][1] if self.samples else {}

    def since(self, moment: float) -> list[dict[str, list[str]]]:
        return [sample for at, sample in self.samples if at >= moment]


@pytest.fixture
def deployment(transactional_db, public_tenant, tmp_path):
    """The web server and the cluster of one deployment, a pool of one pre-migrated schema, and an operator."""
    started = time.monotonic()
    migrations = _write_app(tmp_path / "app")
    exports = tmp_path / "exports"
    env = {
        **os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.operator_day.settings",
        "OPERATOR_DAY_APP_DIR": str(tmp_path / "app"), "TENANT_EXPORT_DIR": str(exports),
        "TASKS_QUEUE_NAME": f"day{os.getpid()}", "Q_WORKERS": "2", "Q_POLL": "0.05", "Q_QUEUE_LIMIT": "2",
        "COURTSIDE_SERVICES_SELF_REGISTER": "1", "COURTSIDE_SERVICES_SELF_TTL": str(TTL),
        "COURTSIDE_SERVICES_SELF_HEARTBEAT_EVERY": "0.5", "TENANT_POOL_SIZE": "0", "CONN_MAX_AGE": "60",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)  # the ORM broker and per-process caches: the deployment `make run` gives
    make_user("public", username=OPERATOR[0], superuser=True, password=OPERATOR[1])
    port = _free_port()
    # What `make run` starts (bin/run): gunicorn with its configuration, two worker processes, and the cluster.
    web = Process("web", [str(Path(sys.executable).with_name("gunicorn")), "-c", "deploy/gunicorn.conf.py"],
                  env={**env, "COURTSIDE_HOST": "127.0.0.1", "COURTSIDE_PORT": str(port), "WEB_CONCURRENCY": "2",
                       "WEB_THREADS": "4"}, log_dir=tmp_path).start()
    cluster = Process("cluster", [sys.executable, "manage.py", "qcluster"], env=env, log_dir=tmp_path)
    watch = RegistryWatch([web, cluster])
    try:
        cluster.start()
        # The operator fills the sign-up pool, as after every deploy (`tenant pool`), while the processes start.
        pool = subprocess.run([sys.executable, "manage.py", "tenant", "pool", "--size", "1"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
        assert pool.returncode == 0, pool.stdout + pool.stderr
        url = f"http://127.0.0.1:{port}"

        def web_answers():
            assert web.alive(), web.log_tail()
            try:
                return httpx.get(f"{url}/api/v1/", headers={"Host": "localhost"}, timeout=5).status_code < 500
            except httpx.TransportError:
                return False

        _wait(web_answers, timeout=STARTUP, what="the web server")
        _wait(lambda: b"running." in cluster.log_path.read_bytes() or not cluster.alive(), timeout=STARTUP,
              what="the cluster")
        assert cluster.alive(), cluster.log_tail()
        watch.start()
        # Up means ready, as a deploy's readiness gate has it: both in the registry and passing. A web worker that
        # registered before the cluster's first heartbeat is not ready (its /readyz is 503) until its next
        # heartbeat after it (tests/registry/test_selfreg_readiness.py bounds that); the day starts then.
        ready_by = time.monotonic() + STARTUP
        while not (watch.errors or _all_passing(watch.latest())):
            assert time.monotonic() < ready_by, f"never both passing in the registry: {watch.lapses[-5:]}"
            time.sleep(0.1)
        assert not watch.errors, watch.errors
        print(f"\nThe deployment is up and ready, its pool filled, in {time.monotonic() - started:.2f} s.")
        yield Day(url=url, migrations=migrations, exports=exports, web=web, cluster=cluster, watch=watch)
    finally:
        try:
            watch.stop()
        finally:
            try:
                cluster.stop()
            finally:
                try:
                    web.stop()
                finally:
                    _scrub_day_app()


# ------------------------------------------------------------------ the people of the day


class Day:
    def __init__(self, *, url, migrations, exports, web, cluster, watch):
        self.url, self.migrations, self.exports = url, migrations, exports
        self.web, self.cluster, self.watch = web, cluster, watch
        self.operator = httpx.Client(base_url=url, headers={"Host": "localhost"}, auth=OPERATOR, timeout=30)
        self.tenant_basic = httpx.Client(base_url=url, headers={"Host": HOST}, auth=TENANT_ADMIN, timeout=30)
        self.api_key: str | None = None
        self._integration: httpx.Client | None = None
        self.steps: list[tuple[str, float]] = []
        self._started = self._step_started = time.monotonic()

    def tenant(self, path: str, **kwargs) -> httpx.Response:
        """A call of the tenant's API with its API key, as its own integration would make it."""
        if self._integration is None:
            self._integration = httpx.Client(base_url=self.url, timeout=30, headers={
                "Host": HOST, "Authorization": f"Api-Key {self.api_key}"})
        return self._integration.request(kwargs.pop("method", "GET"), path, **kwargs)

    def admin(self, host: str, credentials: tuple[str, str]) -> httpx.Client:
        """A browser-like session on an admin site: the login form, its CSRF token, the session cookie."""
        client = httpx.Client(base_url=self.url, headers={"Host": host}, timeout=30)
        page = client.get("/admin/login/", params={"next": "/admin/"})
        assert page.status_code == 200, page.text[:500]
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        answer = client.post("/admin/login/?next=/admin/", data={
            "csrfmiddlewaretoken": token, "username": credentials[0], "password": credentials[1], "next": "/admin/"})
        assert answer.status_code == 302 and answer.headers["location"] == "/admin/", answer.text[:2000]
        return client

    def status(self, **params) -> dict:
        answer = self.operator.get("/api/v1/schemas/status/", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def history(self, schema: str) -> list[dict]:
        answer = self.operator.get(f"/api/v1/schemas/{schema}/history/", params={"page_size": 500})
        assert answer.status_code == 200, answer.text
        return answer.json()["results"]

    def task(self, run_id: str, *, tenant: bool = False) -> dict:
        path = f"/api/v1/tasks/runs/{run_id}/"
        answer = self.tenant(path) if tenant else self.operator.get(path)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def change(self, key: str, value, *, tenant: str | None = None) -> float:
        """The operator changes a key through the API; the moment its answer arrived (the change committed)."""
        answer = self.operator.post("/api/v1/config/entries/",
                                    json={"key": key, "value": value, **({"tenant": tenant} if tenant else {})})
        assert answer.status_code in (200, 201), answer.text
        return time.time()

    def step(self, name: str) -> None:
        now = time.monotonic()
        self.steps.append((name, now - self._step_started))
        self._step_started = now
        assert self.web.alive(), self.web.log_tail()
        assert self.cluster.alive(), self.cluster.log_tail()

    def report(self) -> str:
        lines = [f"  {seconds:6.2f} s  {name}" for name, seconds in self.steps]
        return "\n".join(["The operator's day:", *lines, f"  {time.monotonic() - self._started:6.2f} s  in all"])


def _web_within(day: Day, changed_at: float, observe, expected, *, in_a_row: int = 4) -> float:
    """Poll the web until `observe()` equals `expected` `in_a_row` times running (so in every gunicorn worker that
    answers, not one only); how long after the change that was."""
    streak, seen = 0, None
    while streak < in_a_row and time.time() - changed_at < 5:
        seen = observe()
        streak = streak + 1 if seen == expected else 0
    assert streak == in_a_row, f"the web still shows {seen!r}, not {expected!r}"
    return time.time() - changed_at


# ------------------------------------------------------------------ the day


def test_the_operators_day(deployment):
    day = deployment
    try:
        _sign_up_from_the_pool(day)
        _roll_out_a_new_migration(day)
        _edit_an_applied_migration(day)
        run_id = _change_the_configuration_under_a_running_task(day)
        _the_task_ran_in_its_schema_and_shows_in_both_admins(day, run_id)
        _exhaust_the_daily_quota_then_upgrade(day)
        _the_registry_stays_passing_while_idle(day)
        _delete_the_tenant(day)
    finally:
        print("\n" + day.report())


def _sign_up_from_the_pool(day: Day) -> None:
    assert day.status()["pool"]["ready"] == 1

    answer = day.operator.post("/api/v1/tenants/", json={
        "name": "Boston Celtics", "schema_name": SCHEMA, "plan": "FREE", "admin_email": "gm@celtics.example",
        "admin_password": TENANT_ADMIN[1]})
    assert answer.status_code == 201, answer.text
    assert answer.json()["domains"] == [HOST] and answer.json()["plan"] == "FREE"
    assert day.status()["pool"] == {"ready": 0, "stale": 0, "summary": "pool: 0 ready, 0 stale"}  # it took the pool's

    # Reference data, on its own host, through its API.
    teams = day.tenant_basic.get("/api/v1/teams/", params={"page_size": 100})
    assert teams.status_code == 200, teams.text
    assert teams.json()["count"] == 30
    players = day.tenant_basic.get("/api/v1/players/", params={"search": "james"})
    assert players.status_code == 200 and players.json()["count"] > 0
    # Its admin answers on its host, with its own users only.
    tenant_admin = day.admin(HOST, TENANT_ADMIN)
    home = tenant_admin.get("/admin/")
    assert home.status_code == 200 and "Boston Celtics" in home.text
    # Its first API key, created in its admin and shown once.
    page = tenant_admin.get("/admin/tenants/apikey/add/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    created = tenant_admin.post("/admin/tenants/apikey/add/", data={
        "csrfmiddlewaretoken": token, "name": "integration", "scope": "write"}, follow_redirects=True)
    day.api_key = re.search(r"\bcs_[\w-]+\.[\w-]+", created.text).group(0)
    assert day.tenant("/api/v1/teams/").status_code == 200
    with pytest.raises(AssertionError):
        day.admin("localhost", TENANT_ADMIN)  # the tenant's admin user is nobody on the operator's site

    # Migration status, history and drift know it as a tenant migrated in place (warriors was).
    by_schema = {s["schema"]: s for s in day.status()["schemas"]}
    assert by_schema[SCHEMA]["exists"] and by_schema[SCHEMA]["pending"] == [] and by_schema[SCHEMA]["changed"] == []
    assert not any(name.startswith("_pool_") for name in by_schema)
    # Its ledger, moved from the pool's name with the schema, is what the schema itself has applied.
    history = day.history(SCHEMA)
    assert {r["schema_name"] for r in history} == {SCHEMA} and {r["outcome"] for r in history} == {"applied"}
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{SCHEMA}".django_migrations')
        applied = set(cursor.fetchall())
    assert {(r["app_label"], r["name"]) for r in history} == applied
    assert SCHEMA not in {s["schema"] for s in day.status(problems="1")["schemas"]}
    day.step("a tenant signs up from the pool: reference data, admin, API key, ledger")


def _roll_out_a_new_migration(day: Day) -> None:
    (day.migrations / "0001_initial.py").write_text(textwrap.dedent(MIGRATION).lstrip())
    target = f"{APP}.0001_initial"
    pending = {s["schema"] for s in day.status()["schemas"] if target in s["pending"]}
    assert pending == {SCHEMA, "lakers", "warriors"}, pending  # not public: a tenant app has nothing to do there

    submitted = day.operator.post("/api/v1/tasks/runs/", json={"name": "schemas.rollout", "args": {}})
    assert submitted.status_code == 201, submitted.text
    run = _wait(lambda: (r := day.task(submitted.json()["id"]))["status"] in ("succeeded", "failed") and r,
                timeout=60, what="the rollout on the cluster")
    assert run["status"] == "succeeded", run
    assert run["progress"] == 1.0 and run["result"]["migrated"] == 3 and run["result"]["failed"] == []

    for schema in (SCHEMA, "lakers", "warriors"):
        rows = [r for r in day.history(schema) if r["app_label"] == APP]
        assert [(r["name"], r["outcome"]) for r in rows] == [("0001_initial", "applied")], (schema, rows)
    assert not [s for s in day.status()["schemas"] if s["pending"]]
    rollout = day.operator.get(f"/api/v1/schemas/rollouts/{run['result']['rollout']}/")
    assert rollout.status_code == 200, rollout.text
    day.step("a new migration is rolled out to every schema on the cluster")


def _edit_an_applied_migration(day: Day) -> None:
    path = day.migrations / "0001_initial.py"
    original = path.read_text()
    path.write_text(original + "\n# edited after it was applied\n")

    report = day.status()
    changed = {(e["app"], e["name"]): sorted(e["schemas"]) for e in report["changed_files"]}
    assert changed == {(APP, "0001_initial"): sorted([SCHEMA, "lakers", "warriors"])}
    problems = {s["schema"]: s["changed"] for s in day.status(problems="1")["schemas"]}
    assert problems == dict.fromkeys([SCHEMA, "lakers", "warriors"], [f"{APP}.0001_initial"])

    path.write_text(original)  # the operator puts the file back: the drift is gone
    assert day.status()["changed_files"] == []
    day.step("an edited migration file is drift in every schema that applied it")


def _change_the_configuration_under_a_running_task(day: Day) -> str:
    """The tenant's task is running on the cluster when the operator changes the page size and its burst limit."""
    submitted = day.tenant("/api/v1/tasks/runs/", method="POST",
                           json={"name": WATCH_TASK, "args": {"page_size": 2, "burst_limit": 3}})
    assert submitted.status_code == 201, submitted.text
    run_id = submitted.json()["id"]
    run = _wait(lambda: (r := day.task(run_id, tenant=True))["progress"] == 0.5 and r, timeout=60,
                what="the tenant's task to start on the cluster")
    assert run["status"] == "running" and run["progress_message"] == "waiting for the operator's change"

    # Shown with its progress in the tenant's admin and in the operator's.
    bar = f'data-run="{run_id}" max="100" value="50"'
    tenant_admin = day.admin(HOST, TENANT_ADMIN)
    assert bar in tenant_admin.get("/admin/tasks/taskrun/").text
    operator_admin = day.admin("localhost", OPERATOR)
    listing = operator_admin.get("/admin/tasks/taskrun/", params={"q": WATCH_TASK}).text
    assert bar in listing and SCHEMA in listing

    def page_length():
        return len(day.tenant("/api/v1/teams/").json()["results"])

    assert page_length() != 2
    changed_at = day.change("api.page_size", 2)
    web_delay = _web_within(day, changed_at, page_length, 2)
    assert web_delay <= WITHIN, f"the page size took {web_delay:.2f} s to reach the web"

    def refusal():
        answer = day.tenant("/api/v1/teams/")
        return answer.json()["error"]["code"] if answer.status_code == 429 else answer.status_code

    assert refusal() == 200
    burst_at = day.change("api.rate_limit_per_minute", 3, tenant=SCHEMA)
    burst_delay = _web_within(day, burst_at, refusal, "burst_limit_exceeded")
    assert burst_delay <= WITHIN, f"the burst limit took {burst_delay:.2f} s to reach the web"
    refused = day.tenant("/api/v1/teams/")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) <= 60

    # The tenant is held to 3 calls a minute now: the operator watches the run.
    run = _wait(lambda: (r := day.task(run_id))["status"] in ("succeeded", "failed") and r, timeout=60,
                what="the tenant's task to finish")
    assert run["status"] == "succeeded", run
    seen = run["result"]["seen_at"]
    assert set(seen) == {"page_size", "burst_limit"}, run["result"]
    cluster_delays = (seen["page_size"] - changed_at, seen["burst_limit"] - burst_at)
    assert max(cluster_delays) <= WITHIN, f"the cluster read page size and burst limit {cluster_delays} s late"

    lifted_at = day.change("api.rate_limit_per_minute", 0, tenant=SCHEMA)  # 0: no burst limit
    assert _web_within(day, lifted_at, refusal, 200) <= WITHIN
    day.step(f"page size and burst limit live in web ({web_delay:.2f} s, {burst_delay:.2f} s) and on the cluster")
    return run_id


def _the_task_ran_in_its_schema_and_shows_in_both_admins(day: Day, run_id: str) -> None:
    run = day.task(run_id, tenant=True)
    assert run["tenant"] == SCHEMA and run["result"]["schema"] == SCHEMA
    assert run["result"]["before"]["page_size"] != 2 and run["result"]["after"] == {"page_size": 2, "burst_limit": 3}
    assert run["progress"] == 1.0

    bar = f'data-run="{run_id}" max="100" value="100"'
    assert bar in day.admin(HOST, TENANT_ADMIN).get("/admin/tasks/taskrun/").text
    assert bar in day.admin("localhost", OPERATOR).get("/admin/tasks/taskrun/", params={"q": WATCH_TASK}).text
    # Another tenant's admin never sees it.
    assert run_id not in httpx.get(f"{day.url}/api/v1/tasks/runs/", headers={"Host": tenant_host("warriors")},
                                   timeout=30).text
    day.step("the tenant's task ran in its schema with the new values, in both admins at 100 %")


def _exhaust_the_daily_quota_then_upgrade(day: Day) -> None:
    answer = day.tenant("/api/v1/teams/")
    assert answer.status_code == 200 and answer.headers["X-RateLimit-Limit"] == "100"
    remaining = int(answer.headers["X-RateLimit-Remaining"])
    for _ in range(remaining):
        answer = day.tenant("/api/v1/teams/")
        assert answer.status_code == 200, answer.text
    refused = day.tenant("/api/v1/teams/")
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "daily_quota_exceeded"
    assert 0 < int(refused.headers["Retry-After"]) <= 86_400
    assert refused.headers["X-RateLimit-Remaining"] == "0"

    upgraded = day.operator.post(f"/api/v1/tenants/{SCHEMA}/plan/", json={"plan": "STARTER"})
    assert upgraded.status_code == 200 and upgraded.json()["plan"] == "STARTER", upgraded.text
    answer = day.tenant("/api/v1/teams/")
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-RateLimit-Limit"] == "10000"
    day.step(f"the daily quota runs out after {remaining + 1} more calls (429, Retry-After); STARTER passes")


def _all_passing(sample: dict[str, list[str]]) -> bool:
    """Both the web server and the cluster registered, every instance of theirs passing."""
    return bool(sample.get("courtside-web") and sample.get("courtside-cluster")) and set(
        sample["courtside-web"] + sample["courtside-cluster"]) == {"passing"}


def _the_registry_stays_passing_while_idle(day: Day) -> None:
    idle_from = time.monotonic()
    # No request, no task, until the registry has been swept 2 TTLs into the quiet: only the processes' own
    # heartbeats keep them passing.
    _wait(lambda: day.watch.samples and day.watch.samples[-1][0] - idle_from >= 2 * TTL, timeout=2 * TTL + 30,
          what="the registry to be swept through two TTLs of idle time", interval=0.2)
    assert not day.watch.errors, day.watch.errors
    times = [at for at, _ in day.watch.samples if at >= idle_from]
    # Swept all through the idle time, never more than a TTL apart (a lapse could not slip between two sweeps).
    assert times and times[-1] - idle_from >= 2 * TTL, "the registry was not swept to the end of the idle time"
    assert max(b - a for a, b in zip([idle_from, *times], times, strict=False)) < TTL, "sweeps a TTL apart"
    samples = day.watch.since(idle_from)
    for sample in samples:
        assert set(sample) == {"courtside-web", "courtside-cluster"}, sample
        assert set(sample["courtside-web"] + sample["courtside-cluster"]) == {"passing"}, sample
    # Each gunicorn worker that served a request is an instance of its own (a worker registers on its first
    # request; the master serves none), and the cluster is one.
    assert 1 <= len(samples[-1]["courtside-web"]) <= 2 and len(samples[-1]["courtside-cluster"]) == 1, samples[-1]
    # And throughout the day, from the moment both were registered and passing (the deployment ready).
    everything = [s for _, s in day.watch.samples]
    first = next(i for i, s in enumerate(everything) if _all_passing(s))
    lapses = [s for s in everything[first:] if set(s.get("courtside-web", []) + s.get("courtside-cluster", [])) != {
        "passing"}]
    assert lapses == [], day.watch.lapses[-20:]

    for name in ("courtside-web", "courtside-cluster"):
        answer = day.operator.get(f"/api/v1/services/{name}/instances")
        assert answer.status_code == 200, answer.text
        instances = answer.json()
        instances = instances.get("results", instances) if isinstance(instances, dict) else instances
        assert {i["status"] for i in instances} == {"passing"}, instances
    day.step(f"web and cluster passing in the registry all day, and after {2 * TTL:.0f} s idle")


def _delete_the_tenant(day: Day) -> None:
    refused = day.operator.request("DELETE", f"/api/v1/tenants/{SCHEMA}/", json={"confirm": "celtic"})
    assert refused.status_code == 400 and "error" in refused.json(), refused.text
    answer = day.operator.request("DELETE", f"/api/v1/tenants/{SCHEMA}/", json={"confirm": SCHEMA})
    assert answer.status_code == 200, answer.text
    export = Path(answer.json()["export"])
    assert export.exists() and export.is_relative_to(day.exports) and export.stat().st_size > 0

    # Its host is gone.
    gone = httpx.get(f"{day.url}/api/v1/teams/", headers={"Host": HOST, "Authorization": f"Api-Key {day.api_key}"},
                     timeout=30)
    assert gone.status_code == 404 and "error" in gone.json()
    # Not in the ledger lists, the matrix or the status any more.
    assert SCHEMA not in {s["schema"] for s in day.status()["schemas"]}
    operator_admin = day.admin("localhost", OPERATOR)
    assert f">{SCHEMA}<" not in operator_admin.get("/admin/schemas/migrationrecord/").text
    assert f'data-schema="{SCHEMA}"' not in operator_admin.get("/admin/schemas/migrationrecord/matrix/").text
    # Its migration history is kept: by name, and behind the ledger's "deleted" filter.
    assert {r["app_label"] for r in day.history(SCHEMA)} >= {APP, "league"}
    assert f">{SCHEMA}<" in operator_admin.get("/admin/schemas/migrationrecord/", params={"kind": "deleted"}).text
    # Nothing of it in the registry.
    assert SCHEMA not in day.operator.get("/api/v1/services/").text
    # Nothing of it waits in the task queue; its finished runs stay as history.
    runs = day.operator.get("/api/v1/tasks/runs/", params={"tenant": SCHEMA, "page_size": 500}).json()["results"]
    assert runs and {r["status"] for r in runs} <= {"succeeded", "failed", "cancelled"}, runs
    assert SCHEMA not in day.operator.get("/api/v1/tasks/queue/").text
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", [SCHEMA])
        assert cursor.fetchone()[0] == 0
    day.step("the tenant is deleted with confirmation: export written, nothing left but history")
