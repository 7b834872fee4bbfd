"""Prometheus metrics: /metrics on the operator host, for an operator's session or METRICS_TOKEN.

Two kinds of figures:
- counted in the web processes as requests pass (requests by route, method and
  status with latency histograms; tenant API calls by tenant and admission
  outcome). Under gunicorn each worker writes them to PROMETHEUS_MULTIPROC_DIR
  (prometheus-client's multiprocess mode, deploy/gunicorn.conf.py) and a scrape
  of any worker sums every worker's files;
- read from PostgreSQL at scrape time, so they are the same whichever worker
  answers and whichever process (web, cluster) did the work: quota headroom per
  tenant, task runs by task, priority and status, queue depth by priority,
  run latency, registry instances by service and status, the last sweep's
  duration, configuration reload lag, pending migrations and drifted schemas,
  and the sign-up pool's size. The slow ones (migrations, drift) are read at
  most once per METRICS_SLOW_SECONDS per process.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
import time

from django.apps import apps
from django.conf import settings
from django.db import connection
from django.db.models import Count, Max
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

logger = logging.getLogger(__name__)

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

REQUESTS = Counter("courtside_http_requests", "HTTP requests answered, by route pattern, method and status.",
                   ["site", "route", "method", "status"])
LATENCY = Histogram("courtside_http_request_duration_seconds", "Time to answer an HTTP request, by route.",
                    ["site", "route", "method"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
TENANT_API_CALLS = Counter("courtside_tenant_api_calls", "Tenant API calls by tenant and admission outcome "
                           "(admitted, daily_quota, burst, concurrency, suspended).", ["tenant", "outcome"])

def observe_admission(*, tenant: str, outcome: str) -> None:
    """The admission's observer (tenants.metering.admission_observe, wired in ops/apps.py): every authenticated
    tenant call, admitted or refused by a quota, wherever it came in (the API, the MCP server)."""
    TENANT_API_CALLS.labels(tenant=tenant, outcome=outcome).inc()


def _suspended_refusal(response) -> bool:
    """A suspended tenant is refused before any admission (tenants/middleware.py): seen on its answer."""
    return response.status_code == 403 and b'"tenant_suspended"' in getattr(response, "content", b"")[:200]


class MetricsMiddleware:
    """Counts every request by route and status and times it; counts tenant API calls by admission outcome."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.lstrip("/")

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        try:
            self._observe(request, response, elapsed)
        except Exception:  # noqa: BLE001 - metrics never fail a request
            logger.warning("Request metrics failed", exc_info=True)
        return response

    def _observe(self, request, response, elapsed: float) -> None:
        tenant = getattr(request, "tenant", None)
        site = "unknown" if tenant is None else ("operator" if tenant.schema_name == "public" else "tenant")
        match = getattr(request, "resolver_match", None)
        if match is not None:
            route = match.route or match.view_name or "unnamed"
        elif request.path_info.startswith(self.static_prefix):
            route = "static"
        else:
            route = "unmatched"  # 404s of unknown paths: one label, whatever the path
        method = request.method if request.method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE") else "other"
        REQUESTS.labels(site=site, route=route, method=method, status=str(response.status_code)).inc()
        LATENCY.labels(site=site, route=route, method=method).observe(elapsed)
        if site == "tenant" and request.path_info.startswith("/api/v1/") and _suspended_refusal(response):
            observe_admission(tenant=tenant.schema_name, outcome="suspended")


# ------------------------------------------------------------------------------------------ scrape-time figures

_slow_lock = threading.Lock()
_slow: dict = {"until": 0.0, "families": []}


def _gauge(name, documentation, labels=(), rows=()):
    family = GaugeMetricFamily(name, documentation, labels=list(labels))
    for label_values, value in rows:
        family.add_metric([str(v) for v in label_values], float(value))
    return family


class DatabaseCollector:
    """Figures read from PostgreSQL at scrape time (public schema only, a few aggregate queries)."""

    def collect(self):
        connection.set_schema_to_public()
        for part in (self._quotas, self._tasks, self._workers, self._registry, self._configuration):
            try:
                yield from part()
            except Exception:  # noqa: BLE001 - one missing figure does not lose the others
                logger.warning("Metrics: %s failed", part.__name__, exc_info=True)
        yield from self._slow_figures()

    @staticmethod
    def _quotas():
        tenant_model, usage = apps.get_model("tenants", "Tenant"), apps.get_model("tenants", "UsageDay")
        today = timezone.now().date()
        calls = dict(usage.objects.filter(date=today).values_list("tenant__schema_name", "api_calls"))
        rows = []
        for schema, limit in (tenant_model.objects.exclude(schema_name="public")
                              .exclude(schema_name__startswith="_pool_")
                              .values_list("schema_name", "plan__api_calls_per_day")):
            if limit is not None:
                rows.append(((schema,), max(0, limit - calls.get(schema, 0))))
        yield _gauge("courtside_tenant_quota_headroom_calls", "API calls a tenant may still make today (UTC).",
                     ["tenant"], rows)

    @staticmethod
    def _tasks():
        run = apps.get_model("tasks", "TaskRun")
        from tasks.models import Priority

        labels = dict(Priority.choices)
        by_outcome = (run.objects.values("name", "priority", "status").annotate(n=Count("pk"))
                      .order_by("name", "priority", "status"))
        yield _gauge("courtside_task_runs", "Task runs recorded, by task, priority and status.",
                     ["task", "priority", "status"],
                     [((r["name"], labels.get(r["priority"], r["priority"]), r["status"]), r["n"]) for r in by_outcome])
        waiting = dict(run.objects.filter(status__in=["queued", "claimed", "retrying"]).values("priority")
                       .annotate(n=Count("pk")).values_list("priority", "n"))
        yield _gauge("courtside_task_queue_depth", "Runs waiting to start, by priority.", ["priority"],
                     [((label,), waiting.get(value, 0)) for value, label in Priority.choices])
        since = timezone.now() - timezone.timedelta(hours=1)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - "
                "created_at)), percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM "
                "finished_at - started_at)) FROM tasks_taskrun WHERE finished_at >= %s AND started_at IS NOT NULL",
                [since])
            wait, run_time = cursor.fetchone()
        rows = []
        for phase, values in (("wait", wait), ("run", run_time)):
            for quantile, value in zip(("0.5", "0.95"), values or (), strict=False):
                if value is not None:
                    rows.append(((phase, quantile), value))
        yield _gauge("courtside_task_run_latency_seconds", "Runs finished in the last hour: time queued before "
                     "starting (wait) and running (run), by quantile.", ["phase", "quantile"], rows)

    @staticmethod
    def _workers():
        """Each cluster's worker processes as their heartbeats tell (tasks.engine.workers): one row per live
        worker, so the series are bounded by the processes running, plus the ends by kind."""
        from tasks import conf
        from tasks.engine.workers import STALE_HEARTBEATS

        worker = apps.get_model("tasks", "WorkerProcess")
        now = timezone.now()
        cutoff = now - timezone.timedelta(seconds=STALE_HEARTBEATS * conf.worker_heartbeat())
        live = list(worker.objects.filter(ended_at__isnull=True)
                    .values_list("cluster", "host", "pid", "last_heartbeat_at", "tasks_done", "current_run_id"))
        clusters = sorted({row[0] for row in live} | set(worker.objects.values_list("cluster", flat=True)
                                                        .distinct()))
        alive = {cluster: 0 for cluster in clusters}
        for cluster, _, _, beat, _, _ in live:
            alive[cluster] += beat >= cutoff
        yield _gauge("courtside_workers_alive", "Worker processes heartbeating in time, by cluster.", ["cluster"],
                     [((cluster,), n) for cluster, n in alive.items()])
        yield _gauge("courtside_worker_last_heartbeat_age_seconds", "Seconds since each running worker's last "
                     "heartbeat (one past a few heartbeats is about to be reported lost).",
                     ["cluster", "host", "pid"],
                     [((c, h, p), max(0.0, (now - beat).total_seconds())) for c, h, p, beat, _, _ in live])
        yield _gauge("courtside_worker_tasks_done", "Tasks each running worker has finished since it started.",
                     ["cluster", "host", "pid"], [((c, h, p), done) for c, h, p, _, done, _ in live])
        yield _gauge("courtside_worker_busy", "1 while a running worker holds a task run.", ["cluster", "host", "pid"],
                     [((c, h, p), int(run is not None)) for c, h, p, _, _, run in live])
        ends = (worker.objects.exclude(end="").values("cluster", "end").annotate(n=Count("pk"))
                .order_by("cluster", "end"))
        yield _gauge("courtside_worker_ends", "Worker processes that ended, by cluster and how: recycled (their "
                     "quota of tasks done), stopped with their cluster, lost (stopped heartbeating).",
                     ["cluster", "end"], [((r["cluster"], r["end"]), r["n"]) for r in ends])

    @staticmethod
    def _registry():
        instance = apps.get_model("services", "ServiceInstance")
        rows = instance.objects.values("name", "status").annotate(n=Count("pk")).order_by("name", "status")
        yield _gauge("courtside_registry_instances", "Registered service instances by service and status.",
                     ["service", "status"], [((r["name"], r["status"]), r["n"]) for r in rows])
        run = apps.get_model("tasks", "TaskRun")  # the sweep is a system job: each of its runs is a TaskRun
        # Newest first along the taskrun_newest index: a sweep runs every 30 s, so the walk stops at once.
        last = (run.objects.filter(name="registry.health_sweep", status="succeeded", started_at__isnull=False,
                                   finished_at__isnull=False)
                .order_by("-created_at").values_list("started_at", "finished_at").first())
        if last is not None:
            yield _gauge("courtside_registry_sweep_duration_seconds", "Duration of the last health sweep.",
                         rows=[((), (last[1] - last[0]).total_seconds())])

    @staticmethod
    def _configuration():
        from configuration.store import store

        change = apps.get_model("configuration", "ConfigChange")
        latest = change.objects.aggregate(at=Max("changed_at"))["at"]
        seen = getattr(store, "last_invalidated_at", None)  # wall clock of this process's last reload
        lag = 0.0
        if latest is not None and seen is not None and latest.timestamp() > seen:
            lag = time.time() - latest.timestamp()  # a committed change this process has not reloaded yet
        yield _gauge("courtside_configuration_reload_lag_seconds", "How long the newest committed configuration "
                     "change has gone unseen by this process (0: seen).", rows=[((), lag)])

    def _slow_figures(self):
        now = time.monotonic()
        if now >= _slow["until"] and _slow_lock.acquire(blocking=False):
            try:
                _slow["families"] = list(self._schemas())
                _slow["until"] = now + float(getattr(settings, "METRICS_SLOW_SECONDS", 60.0))
            except Exception:  # noqa: BLE001
                logger.warning("Metrics: schema figures failed", exc_info=True)
            finally:
                _slow_lock.release()
        yield from _slow["families"]

    @staticmethod
    def _schemas():
        from schemas.services import drift_report

        report = drift_report()
        public = settings.PUBLIC_SCHEMA_NAME
        pending = {"public": 0, "tenant": 0}
        for schema in report.schemas:
            pending["public" if schema.schema == public else "tenant"] += len(schema.pending)
        yield _gauge("courtside_migrations_pending", "Unapplied migrations summed over schemas, public or tenant.",
                     ["schema_kind"], [((kind,), n) for kind, n in pending.items()])
        yield _gauge("courtside_schemas_drifted", "Schemas with a drift problem (pending, changed or gone "
                     "migrations, missing tables or columns).", rows=[((), len(report.problem_schemas))])
        for spare in report.spares:
            counts = spare.as_dict()
            yield _gauge(f"courtside_tenant_{spare.label}_schemas", f"Spare schemas of the {spare.label}, by state.",
                         ["state"], [((state,), counts[state]) for state in ("ready", "stale") if state in counts])


def registry() -> CollectorRegistry:
    if MULTIPROCESS:
        from prometheus_client import multiprocess

        scrape = CollectorRegistry()
        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape = CollectorRegistry()
        for collector in (REQUESTS, LATENCY, TENANT_API_CALLS):
            scrape.register(collector)
    scrape.register(DatabaseCollector())
    return scrape


def _allowed(request, operator_check) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        return True
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    # The operator admin's own rule (staff, and MFA where it is required), handed in by the URL conf.
    return bool(operator_check(request)) if operator_check is not None else bool(user.is_staff)


def metrics_view(request, operator_check=None):
    """GET /metrics on the operator host: Prometheus text format for an operator or the bearer token."""
    if not _allowed(request, operator_check):
        return JsonResponse({"error": {"code": "not_authenticated", "message": "Metrics are for operators: log in "
                                       "or send Authorization: Bearer <METRICS_TOKEN>.", "detail": None}},
                            status=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    if request.method not in ("GET", "HEAD"):
        return JsonResponse({"error": {"code": "method_not_allowed", "message": "GET only.", "detail": None}},
                            status=405, headers={"Allow": "GET, HEAD"})
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
