"""Many processes, one system (issue 19.3): the rehearsal that tests/rehearsal and bench/rehearsal.py run.

On loopback: PgBouncer (transaction pooling) in front of PostgreSQL, Redis as
broker and cache, two production web servers (gunicorn, deploy/gunicorn.conf.py,
one worker each, on fixed ports) and two `qcluster`s on the Redis broker. A
mixed load runs against both servers: two tenants on a plan of their own read
and submit tasks (every priority, each run recording one effect under its
idempotency key) until their daily quota is spent, a registry instance
heartbeats through the fast path, and the configuration's page size changes
every few seconds. Meanwhile one web server and one cluster are SIGKILLed
(their whole process group) at random moments and started again.

Afterwards `Rehearsal.verdict()` lists every broken promise; `figures()` says
what was done. The processes' configuration is observed through
tests/rehearsal/observer.py (one log line per process per value it learns).
The caller's Django (pytest-django's test database) is the operator's view:
it makes the tenants, sweeps the registry as the cluster's sweep would (every
0.3 s, so a lapse is seen within a third of a second; its probes of the web
servers' /readyz on a thread of their own) and reads the outcome.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from tests.deploy import stack
from tests.pgbouncer import PgBouncer, free_port

TENANTS = ("lakers", "warriors")
PRIORITIES = (0, 1, 2, 3)  # LOW, NORMAL, HIGH, CRITICAL
PROBE_SERVICE = "rehearsal-probe"
logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request of the load otherwise


@dataclass
class Knobs:
    seconds: float = 35.0          # how long the load runs
    web_kills: int = 2
    cluster_kills: int = 2
    quota: int = 120               # API calls per day of each tenant's plan (reads and task submissions)
    config_every: float = 3.0      # seconds between configuration changes
    ttl: float = 2.0               # the processes' self-registration TTL
    within: float = 1.0            # a configuration change must be live everywhere this soon
    seed: int = field(default_factory=lambda: random.randrange(1 << 30))


@dataclass
class Call:
    slot: int
    kind: str
    started: float
    ended: float
    status: int | None            # None: no answer
    error: str = ""
    tenant: str = ""
    label: str = ""


class Server:
    """One web server or cluster slot: its current process, and when it was down."""

    def __init__(self, kind: str, index: int, env: dict[str, str], port: int | None = None):
        self.kind, self.index, self.env, self.port = kind, index, env, port
        self.process: stack.Process | None = None
        self.down: list[list[float]] = []  # [killed at, back at (inf while down)]
        self.kills: list[dict] = []
        self.generations: list[int] = []  # process group of every start

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self.kind == "web":
            self.process, _ = stack.start_server({**self.env, "COURTSIDE_PORT": str(self.port)})
        else:
            self.process = stack.start_cluster(self.env)
            self.process.wait_for(r"running\.", timeout=90)
        self.generations.append(self.process.popen.pid)
        self.last_tree = self.tree()
        if self.down and self.down[-1][1] == float("inf"):
            self.down[-1][1] = time.time()

    def tree(self) -> set[int]:
        try:
            root = psutil.Process(self.process.popen.pid)
            return {root.pid, *(child.pid for child in root.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def kill(self) -> None:
        pids, group = self.tree(), self.process.popen.pid
        killed_at = time.time()
        self.down.append([killed_at, float("inf")])
        os.killpg(group, signal.SIGKILL)
        self.process.popen.wait(10)
        self.kills.append({"at": killed_at, "pids": pids, "group": group})

    def was_down(self, start: float, end: float) -> bool:
        return any(a <= end + 0.05 and b >= start - 0.05 for a, b in self.down)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


class Rehearsal:
    def __init__(self, *, knobs: Knobs, database_url: str, redis_url: str, workdir: Path, say=print):
        self.knobs, self.workdir, self.say = knobs, workdir, say
        self.random = random.Random(knobs.seed)
        self.redis_url = redis_url
        self.direct_url = database_url
        self.calls: list[Call] = []
        self.changes: list[tuple[float, int]] = []
        self.propagation: list[float] = []
        self.missed: list[str] = []
        self.errors: list[str] = []
        self.registry: dict[str, dict] = {}  # service_id -> {"pid", "critical_at", "passing_at", "name"}
        self.sweep_gaps: list[float] = []  # start to start of consecutive sweeps: the sweep period
        self.recoveries = 0
        self.charged_unanswered: dict[str, int] = {}
        self.counts: dict[str, int] = {}  # lost_requests, lost_tasks, run_twice: filled by verdict()
        self.keys: dict[str, str] = {}
        self.observer_log = workdir / "observer.log"
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.bouncer: PgBouncer | None = None
        self.webs: list[Server] = []
        self.clusters: list[Server] = []

    # ------------------------------------------------------------------ set-up

    def prepare(self) -> None:
        """Tenants on a plan of the rehearsal's own (its daily quota, CRITICAL allowed), keys, a probe instance."""
        import datetime as dt

        from django.utils import timezone

        from registry import registration, tokens
        from tenants import services
        from tenants.models import Plan, Tenant, UsageDay

        plan, _ = Plan.objects.update_or_create(code="REHEARSAL", defaults={
            "name": "Rehearsal", "api_calls_per_day": self.knobs.quota, "max_task_priority": 3,
            "max_active_task_runs": None, "max_concurrent_requests": None})
        today = timezone.now().astimezone(dt.UTC).date()
        for schema in TENANTS:
            tenant = Tenant.objects.get(schema_name=schema)
            tenant.plan = plan
            tenant.save(update_fields=["plan"])
            UsageDay.objects.filter(tenant=tenant, date=today).delete()
            self.keys[schema] = services.api_key_create(tenant=tenant, name="rehearsal", scope="write")[1]
        _, self.probe_token = tokens.token_create(service_name=PROBE_SERVICE, rotate=True)
        registration.service_register(service_id="rehearsal-probe-1", name=PROBE_SERVICE, host="127.0.0.1",
                                      port=9, token_service=PROBE_SERVICE)

    def start(self) -> None:
        from urllib.parse import urlsplit

        import redis

        redis.Redis.from_url(self.redis_url).flushdb()
        parts = urlsplit(self.direct_url)
        self.bouncer = PgBouncer(host=parts.hostname or "127.0.0.1", port=parts.port or 5432,
                                 user=parts.username or "postgres", pool_size=20).start()
        static = self.workdir / "static"
        static.mkdir(exist_ok=True)
        tag = uuid.uuid4().hex[:8]
        env = stack.production_env(
            self.bouncer.url(parts.path.lstrip("/")), static,
            DJANGO_SETTINGS_MODULE="tests.rehearsal.settings", DATABASE_DIRECT_URL=self.direct_url,
            DATABASE_POOL_MODE="transaction", REDIS_URL=self.redis_url, TASKS_QUEUE_NAME=f"rehearsal{tag}",
            TASKS_REDIS_PREFIX=f"rehearsal{tag}", Q_WORKERS="2", Q_POLL="0.05", TASKS_LEASE_GRACE="1",
            COURTSIDE_SERVICES_SELF_REGISTER="1", COURTSIDE_SERVICES_SELF_TTL=str(self.knobs.ttl),
            COURTSIDE_SERVICES_SELF_HEARTBEAT_EVERY="0.5", WEB_CONCURRENCY="1", WEB_THREADS="4",
            REHEARSAL_OBSERVER_LOG=str(self.observer_log), PYTHONUNBUFFERED="1",
            LOG_REQUEST_LEVEL="WARNING")
        self.webs = [Server("web", i, env, free_port()) for i in range(2)]
        self.clusters = [Server("cluster", i, env) for i in range(2)]
        starters = [threading.Thread(target=s.start) for s in (*self.webs, *self.clusters)]
        for thread in starters:
            thread.start()
        for thread in starters:
            thread.join()
        for server in (*self.webs, *self.clusters):
            assert server.process and server.process.popen.poll() is None, server.process.output[-3000:]

    def stop(self) -> None:
        self._halt.set()
        stoppers = [threading.Thread(target=s.stop) for s in (*self.webs, *self.clusters)]
        for thread in stoppers:
            thread.start()
        for thread in stoppers:
            thread.join(60)
        if self.bouncer is not None:
            self.bouncer.stop()

    # ------------------------------------------------------------------ the load

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _request(self, client: httpx.Client, kind: str, method: str, path: str, *, host: str, tenant: str = "",
                 label: str = "", **kwargs) -> Call:
        slot = self.random.randrange(2)
        server = self.webs[slot]
        started = time.time()
        status, error, body = None, "", None
        try:
            answer = client.request(method, f"{server.url}{path}", headers={**stack.HTTPS, "Host": host,
                                                                            **kwargs.pop("headers", {})}, **kwargs)
            status, body = answer.status_code, answer
        except httpx.TransportError as exc:
            error = type(exc).__name__
        call = Call(slot, kind, started, time.time(), status, error, tenant, label)
        if status is not None and (status >= 500 or status == 429):
            call.error = body.text[:1000]
        self._record(call)
        return call

    def _tenant_load(self, schema: str) -> None:
        """Reads and task submissions, at a pace that spends the quota by two thirds of the load."""
        pace = self.knobs.seconds * 0.66 / self.knobs.quota
        host = f"{schema}.localhost"
        auth = {"Authorization": f"Api-Key {self.keys[schema]}"}
        with httpx.Client(timeout=20) as client:
            while not self._halt.is_set():
                if self.random.random() < 0.5:
                    priority = self.random.choice(PRIORITIES)
                    label = f"{schema}-{uuid.uuid4().hex}"
                    self._request(client, "task", "POST", "/api/v1/tasks/runs/", host=host, tenant=schema,
                                  label=label, headers=auth, json={
                                      "name": "system.tally", "args": {"seconds": 0.1, "label": label},
                                      "priority": priority, "timeout": 5, "max_retries": 3})
                else:
                    self._request(client, "read", "GET", "/api/v1/teams/", host=host, tenant=schema, headers=auth)
                self._halt.wait(pace * self.random.uniform(0.5, 1.5))

    def _heartbeats(self) -> None:
        with httpx.Client(timeout=20) as client:
            while not self._halt.is_set():
                self._request(client, "heartbeat", "PUT", "/api/v1/services/heartbeat/rehearsal-probe-1",
                              host="localhost", headers={"Authorization": f"Bearer {self.probe_token}"})
                self._halt.wait(0.2)

    def _kills(self, servers: list[Server], count: int) -> None:
        """`count` kills at random moments of the load, one server of the pair down at a time, each restarted."""
        if not count:
            return
        span = self.knobs.seconds * 0.8 / count
        for index in range(count):
            moment = self._t0 + self.knobs.seconds * 0.05 + span * (index + self.random.uniform(0.1, 0.6))
            if self._halt.wait(max(0.0, moment - time.time())):
                return
            server = self.random.choice(servers)
            server.kill()
            self.say(f"  {time.time() - self._t0:6.2f} s  SIGKILL {server.kind} {server.index} "
                     f"(group {server.kills[-1]['group']})")
            try:
                server.start()
            except Exception as exc:  # noqa: BLE001 - reported in the verdict
                self.errors.append(f"{server.kind} {server.index} did not restart: {exc}")
                return

    def _configuration(self) -> None:
        from django.db import connection

        from configuration import config

        index = 0
        try:
            while not self._halt.wait(self.knobs.config_every):
                index += 1
                value = 5 + index % 90
                config.set("api.page_size", value, changed_by="rehearsal")
                changed = time.time()
                self.changes.append((changed, value))
                threading.Timer(self.knobs.within + 0.3, self._check_change, args=(changed, value)).start()
        finally:
            # This thread's own connection (config.set's), else it outlives the rehearsal and pytest-django
            # cannot drop the test database ("being accessed by other users").
            connection.close()

    def _observed(self) -> list[dict]:
        if not self.observer_log.exists():
            return []
        return [json.loads(line) for line in self.observer_log.read_text().splitlines() if line.strip()]

    def _live_groups(self) -> set[int]:
        return {s.process.popen.pid for s in (*self.webs, *self.clusters)
                if s.process and s.process.popen.poll() is None}

    def _check_change(self, changed: float, value: int) -> None:
        """Every process listening before the change, and alive now in a live server, saw it within `within`."""
        lines = self._observed()
        live = self._live_groups()
        listening = {(line["pid"], line["group"]) for line in lines if line.get("listening") and line["at"] < changed}
        for pid, group in listening:
            if group not in live or not psutil.pid_exists(pid):
                continue  # its server was killed meanwhile, or django-q2 recycled it
            seen = [line["at"] for line in lines if line["pid"] == pid and line.get("value") == value
                    and line["at"] >= changed - 0.05]
            if not seen:
                self.missed.append(f"pid {pid} (group {group}) never saw page_size={value}")
                continue
            self.propagation.append(max(0.0, min(seen) - changed))

    def _sweeps(self) -> None:
        from django.db import connection

        from registry.models import ServiceInstance
        from registry.sweeps import health_sweep

        last = time.monotonic()
        try:
            while not self._halt.is_set():
                self.sweep_gaps.append(time.monotonic() - last)
                last = time.monotonic()
                health_sweep(probe=False)  # TTLs; the probes run on a thread of their own (_probes)
                now = time.time()
                for service_id, name, status, metadata, beat, since in ServiceInstance.objects.filter(
                        name__in=("courtside-web", "courtside-cluster")).values_list(
                        "service_id", "name", "status", "metadata", "last_heartbeat", "checks__critical_since"):
                    entry = self.registry.setdefault(service_id, {
                        "name": name, "pid": int(metadata.get("pid") or metadata.get("sentinel_pid") or 0)})
                    key = f"{status}_at"
                    entry.setdefault(key, now)
                    # A lapse of a process seen passing before (not its start: a process may register before
                    # its dependencies are ready, critical until its next heartbeat).
                    if status == "critical" and since is not None and "critical_since" not in entry \
                            and "passing_at" in entry:
                        # The sweep's own clock when it judged the lapse, and the heartbeat it judged from.
                        entry["critical_since"] = since.timestamp()
                        entry["last_beat"] = beat.timestamp() if beat else None
                self._halt.wait(0.3)
        except Exception as exc:  # noqa: BLE001 - reported in the verdict
            self.errors.append(f"sweep: {exc!r}")
        finally:
            connection.close()

    def _probes(self) -> None:
        """The sweep's probes (the web servers' /readyz checks), as the cluster's scheduled sweep runs them, apart
        from the TTL sweep: a probe of a server that is starting again waits up to its timeout (5 s), and must
        not hold up the judging of a lapse."""
        from django.db import connection

        from registry.sweeps import checks_probe_due

        try:
            while not self._halt.is_set():
                checks_probe_due()
                self._halt.wait(0.3)
        except Exception as exc:  # noqa: BLE001 - reported in the verdict
            self.errors.append(f"probes: {exc!r}")
        finally:
            connection.close()

    def run(self) -> None:
        self._t0 = time.time()
        workers = [threading.Thread(target=self._tenant_load, args=(s,), daemon=True) for s in TENANTS]
        workers += [threading.Thread(target=self._heartbeats, daemon=True)]
        for _ in range(2):  # a second reader per tenant: calls overlap on both servers
            workers += [threading.Thread(target=self._tenant_load, args=(s,), daemon=True) for s in TENANTS]
        sweeper = threading.Thread(target=self._sweeps, daemon=True)
        prober = threading.Thread(target=self._probes, daemon=True)
        killers = [threading.Thread(target=self._kills, args=(self.webs, self.knobs.web_kills), daemon=True),
                   threading.Thread(target=self._kills, args=(self.clusters, self.knobs.cluster_kills), daemon=True)]
        configurer = threading.Thread(target=self._configuration, daemon=True)
        threads = [sweeper, prober, *workers, *killers, configurer]
        for thread in threads:
            thread.start()
        time.sleep(self.knobs.seconds)
        for killer in killers:  # a restart under way finishes before the load stops
            killer.join(120)
        self._halt.set()
        for thread in threads:
            thread.join(60)
        time.sleep(self.knobs.within + 0.5)  # the last change's check
        self._spend_the_rest()
        self._drain()
        self._final_sweeps()

    def _spend_the_rest(self) -> None:
        """A slow machine may not have spent the quotas during the load: read on until each tenant is refused."""
        deadline = time.monotonic() + 120  # bounded: a server that stopped answering is a finding, not a hang
        for schema in TENANTS:
            auth = {"Authorization": f"Api-Key {self.keys[schema]}"}
            with httpx.Client(timeout=20) as client:
                for _ in range(2 * self.knobs.quota):
                    if time.monotonic() > deadline:
                        self.errors.append(f"{schema}: the quota was not spent within 120 s after the load")
                        break
                    call = self._request(client, "read", "GET", "/api/v1/teams/", host=f"{schema}.localhost",
                                         tenant=schema, headers=auth)
                    if call.status == 429:
                        break

    def _drain(self, timeout: float = 90.0) -> None:
        """Wait until every run of the tenants is finished. Runs a kill stranded come back through the recovery
        job (the cluster's every-minute system job), run here as a command of the deployment, with its settings
        and broker, whenever nothing finished for 5 s (so the rehearsal need not wait a minute)."""
        import subprocess
        import sys

        from tasks.models import TERMINAL, TaskRun

        deadline = time.monotonic() + timeout
        open_count, still_since = None, time.monotonic()
        code = "from tasks.engine.recovery import recover_stalled_runs as r; print(r(stalled_for=0))"
        while time.monotonic() < deadline:
            open_runs = TaskRun.objects.filter(tenant__schema_name__in=TENANTS).exclude(status__in=TERMINAL)
            count = open_runs.count()
            if count == 0:
                return
            if count != open_count:
                open_count, still_since = count, time.monotonic()
            elif time.monotonic() - still_since > 5:
                done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=stack.ROOT,
                                      env=self.webs[0].env, capture_output=True, text=True, timeout=120)
                self.say(f"  recovery of stalled runs: {done.stdout.strip() or done.stderr[-500:]}")
                self.recoveries += 1
                still_since = time.monotonic()
            time.sleep(0.5)
        left = list(open_runs.values_list("pk", "status"))[:10]
        self.errors.append(f"runs still unfinished after {timeout:.0f} s: {left}")

    def _final_sweeps(self) -> None:
        """Two TTLs more of sweeps: the restarted processes show passing, the last killed ones critical."""
        self._halt.clear()
        threads = [threading.Thread(target=self._sweeps, daemon=True), threading.Thread(target=self._probes,
                                                                                         daemon=True)]
        for thread in threads:
            thread.start()
        time.sleep(2 * self.knobs.ttl + 0.5)
        self._halt.set()
        for thread in threads:
            thread.join(30)

    # ------------------------------------------------------------------ the verdict

    def verdict(self) -> list[str]:
        from tasks.models import TaskAttempt, TaskEffect, TaskRun
        from tenants.models import Tenant, UsageDay

        broken = list(self.errors)
        # No request that reached a live server lost: no answer only when its server was down meanwhile.
        servers = {w.index: w for w in self.webs}
        lost = [c for c in self.calls if c.status is None and not servers[c.slot].was_down(c.started, c.ended)]
        broken += [f"lost request: {c.kind} to web {c.slot} ({c.error})" for c in lost[:10]]
        self.counts["lost_requests"] = len(lost)
        failed = [c for c in self.calls if c.status is not None and c.status >= 500]
        broken += [f"{c.status} on {c.kind}: {c.error}" for c in failed[:10]]
        # Daily quotas exact across both servers.
        # Charged exactly for what was served, by the product's contract (tasks/README.md, "A tenant's share"):
        # a read costs its request's call; a task submission its request's and its run's (2); a submission whose
        # run the daily quota refused, its request's only (1); a request the quota refused, nothing. A request
        # its server was killed under may have been admitted and never answered: 0 to its full cost.
        for schema in TENANTS:
            tenant = Tenant.objects.get(schema_name=schema)
            counted = sum(UsageDay.objects.filter(tenant=tenant).values_list("api_calls", flat=True))
            low = high = 0
            for c in (c for c in self.calls if c.tenant == schema):
                cost = call_cost(c)
                low, high = low + cost[0], high + cost[1]
            if counted != self.knobs.quota:
                broken.append(f"{schema}: {counted} calls admitted, its quota is {self.knobs.quota}")
            if not low <= counted <= high:
                broken.append(f"{schema}: {counted} calls admitted, the answers account for {low} to {high}")
            self.charged_unanswered[schema] = counted - low
        # No task lost or run twice.
        runs = list(TaskRun.objects.filter(tenant__schema_name__in=TENANTS).values_list("pk", "status", "arguments"))
        by_label: dict[str, int] = {}
        for _, _, args in runs:
            by_label[args.get("label")] = by_label.get(args.get("label"), 0) + 1
        accepted = {c.label for c in self.calls if c.kind == "task" and c.status == 201}
        broken += [f"task {label} accepted but no run" for label in accepted if label not in by_label][:10]
        broken += [f"task {label}: {n} runs" for label, n in by_label.items() if n != 1][:10]
        self.counts["lost_tasks"] = sum(1 for label in accepted if label not in by_label)
        self.counts["run_twice"] = sum(1 for n in by_label.values() if n != 1)
        broken += [f"run {pk} ended {status}" for pk, status, _ in runs if status != "succeeded"][:10]
        for pk, _, _ in runs:
            succeeded = TaskAttempt.objects.filter(run_id=pk, outcome="succeeded").count()
            effects = TaskEffect.objects.filter(key=f"taskrun:{pk}").count()
            if succeeded > 1 or effects > 1:
                self.counts["run_twice"] += 1
            if succeeded != 1 or effects != 1:
                broken.append(f"run {pk}: {succeeded} successful attempts, {effects} effects")
        # Configuration everywhere within `within`.
        broken += self.missed[:10]
        if self.propagation and max(self.propagation) > self.knobs.within:
            broken.append(f"a configuration change took {max(self.propagation):.3f} s to reach a process")
        if self.changes and not self.propagation:
            broken.append("no process was seen taking a configuration change")
        # Registry: every killed process's instance critical within its TTL, every restarted one passing.
        for server in (*self.webs, *self.clusters):
            for kill in server.kills:
                mine = [e for e in self.registry.values() if e["pid"] in kill["pids"]]
                if not mine:
                    broken.append(f"{server.kind} {server.index}: no registry instance of the killed process")
                # Critical within its TTL: judged by the first sweep that starts once the last heartbeat is a
                # TTL old, so at most one sweep period (start to start, the longest this run saw) past it.
                period = max(self.sweep_gaps, default=0.0)
                for entry in mine:
                    since = entry.get("critical_since")
                    if "passing_at" not in entry:
                        broken.append(f"{server.kind} {server.index}: killed instance never passing before")
                        continue
                    if since is None:
                        broken.append(f"{server.kind} {server.index}: killed instance never critical")
                        continue
                    late = since - kill["at"]
                    entry["to_critical"] = late
                    if late > self.knobs.ttl + period + 0.05:
                        broken.append(f"{server.kind} {server.index}: killed instance critical {late:.2f} s after "
                                      f"the kill (TTL {self.knobs.ttl:g} s + sweep period {period:.2f} s)")
            # Its process at the end (the restarted one, or the first if it was never killed) passing.
            tree = server.last_tree
            if not any(e["pid"] in tree and "passing_at" in e for e in self.registry.values()):
                which = f"the process restarted after kill {len(server.kills)}" if server.kills else \
                    "its process (never killed)"
                broken.append(f"{server.kind} {server.index}: {which} never passing in the registry")
        return broken

    def figures(self) -> dict:
        tasks = [c for c in self.calls if c.kind == "task"]
        to_critical = [e["to_critical"] for e in self.registry.values() if "to_critical" in e]
        return {
            "seed": self.knobs.seed,
            "requests": len(self.calls),
            "answered": sum(1 for c in self.calls if c.status is not None),
            "unanswered_while_down": sum(1 for c in self.calls if c.status is None),
            "tasks_accepted": sum(1 for c in tasks if c.status == 201),
            "tasks_refused_by_quota": sum(1 for c in tasks if c.status == 429),
            "heartbeats_ok": sum(1 for c in self.calls if c.kind == "heartbeat" and c.status == 200),
            "web_kills": sum(len(w.kills) for w in self.webs),
            "cluster_kills": sum(len(c.kills) for c in self.clusters),
            "recovery_runs": self.recoveries,
            "config_changes": len(self.changes),
            "propagations_checked": len(self.propagation),
            "max_propagation_s": round(max(self.propagation), 3) if self.propagation else None,
            "max_kill_to_critical_s": round(max(to_critical), 2) if to_critical else None,
            "max_sweep_period_s": round(max(self.sweep_gaps), 2) if self.sweep_gaps else None,
            "charged_unanswered": sum(self.charged_unanswered.values()),
            "over_admissions": self.over_admissions(),
            **self.counts,
        }

    def over_admissions(self) -> int:
        from tenants.models import UsageDay

        return sum(max(0, calls - self.knobs.quota) for calls in UsageDay.objects.filter(
            tenant__schema_name__in=TENANTS).values_list("api_calls", flat=True))


def call_cost(call: Call) -> tuple[int, int]:
    """The calls one request may have spent (least, most): the product's contract, from what it answered."""
    full = 2 if call.kind == "task" else 1
    if call.kind not in ("task", "read"):
        return 0, 0  # heartbeats: no tenant
    if call.status is None:
        return 0, full
    if call.status == 429:
        return (1, 1) if call.kind == "task" and '"calls"' in call.error else (0, 0)
    return full, full


def rehearse(*, knobs: Knobs, database_url: str, redis_url: str, workdir: Path, say=print) -> tuple[dict, list]:
    """Prepare, start, load and kill, stop; the figures and the list of broken promises."""
    rehearsal = Rehearsal(knobs=knobs, database_url=database_url, redis_url=redis_url, workdir=workdir, say=say)
    rehearsal.prepare()
    started = time.monotonic()
    try:
        rehearsal.start()
        say(f"  the stack is up in {time.monotonic() - started:.1f} s (seed {knobs.seed})")
        rehearsal.run()
    finally:
        rehearsal.stop()
        for server in (*rehearsal.webs, *rehearsal.clusters):
            (workdir / f"{server.kind}{server.index}.log").write_text(server.process.output if server.process else "")
    broken = rehearsal.verdict()  # first: it measures each kill's time to critical, which figures() reports
    figures = rehearsal.figures()
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures, broken
