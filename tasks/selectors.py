"""Reads of task runs and schedules, always scoped to the asking tenant."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.utils import timezone

from tasks import conf
from tasks.engine import workers
from tasks.models import Priority, Status, TaskAttempt, TaskRun, TaskSchedule, WorkerProcess, statuses_shown_as


def task_run_list(*, tenant=None, status: str | None = None, priority=None, name: str | None = None,
                  schema_name: str | None = None) -> QuerySet[TaskRun]:
    """Runs the tenant may see (all for the operator), newest first, optionally filtered."""
    runs = TaskRun.objects.for_tenant(tenant).select_related("tenant")
    if status:
        runs = runs.filter(status__in=statuses_shown_as(status))
    if priority is not None and priority != "":
        runs = runs.filter(priority=priority)
    if name:
        runs = runs.filter(name=name)
    if schema_name:
        runs = runs.filter(schema_name=schema_name)
    return runs


def task_run_get(*, tenant, run_id) -> TaskRun:
    """One run the tenant may see; DoesNotExist (a 404) for another tenant's."""
    return task_run_list(tenant=tenant).prefetch_related("depends_on", "attempt_log").get(pk=run_id)


def task_runs_in_order(*, run_ids: list) -> list[TaskRun]:
    """These runs (just written by the caller), in this order, with their dependencies prefetched."""
    found = TaskRun.objects.filter(pk__in=run_ids).select_related("tenant").prefetch_related(
        Prefetch("depends_on", queryset=TaskRun.objects.only("pk")))
    by_id = {run.pk: run for run in found}
    return [by_id[run_id] for run_id in run_ids]


def queue_depth(*, tenant=None) -> dict[str, int]:
    """Runs waiting to start (queued, delivered to a worker or retrying), per priority label, most urgent first."""
    rows = (TaskRun.objects.for_tenant(tenant).filter(status__in=[Status.QUEUED, Status.CLAIMED, Status.RETRYING])
            .values("priority").annotate(n=Count("pk")))
    counts = {row["priority"]: row["n"] for row in rows}
    return {Priority(p).label: counts.get(p, 0) for p in sorted(Priority.values, reverse=True)}


def outcomes_per_hour(*, tenant=None, hours: int = 24, now=None) -> list[dict]:
    """Runs that ended in each of the last `hours` hours (UTC), by outcome: the trend on the admin's chart."""
    import datetime as dt

    from django.db.models.functions import TruncHour
    from django.utils import timezone

    now = now or timezone.now()
    end = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    start = end - dt.timedelta(hours=hours)
    counts = {
        (row["hour"], row["status"]): row["n"]
        for row in TaskRun.objects.for_tenant(tenant)
        # created_at is indexed and never after finished_at: it bounds the scan.
        .filter(created_at__lt=end, finished_at__gte=start, finished_at__lt=end,
                status__in=[Status.SUCCEEDED, Status.FAILED, Status.CANCELLED])
        .annotate(hour=TruncHour("finished_at", tzinfo=dt.UTC)).values("hour", "status")
        .annotate(n=Count("pk"))
    }
    slots = [start + dt.timedelta(hours=i) for i in range(hours)]
    return [{"hour": slot, "succeeded": counts.get((slot, Status.SUCCEEDED), 0),
             "failed": counts.get((slot, Status.FAILED), 0), "cancelled": counts.get((slot, Status.CANCELLED), 0)}
            for slot in slots]


def schedule_list(*, tenant=None) -> QuerySet[TaskSchedule]:
    """Schedules (a tenant's own, or all for the operator), each with `last_run_at`: when it last fired."""
    last_run = TaskRun.objects.filter(schedule=OuterRef("pk")).order_by("-created_at").values("created_at")[:1]
    schedules = TaskSchedule.objects.select_related("tenant", "q_schedule").annotate(last_run_at=Subquery(last_run))
    if tenant is not None and tenant.schema_name != "public":
        schedules = schedules.filter(tenant=tenant)
    return schedules


def task_figures(*, since, tenant=None) -> dict:
    """Queue depth by priority (most urgent first), runs running, runs failed since `since`, and the workers
    busy with a run: one aggregate statement over the runs."""
    waiting = [Status.QUEUED, Status.CLAIMED, Status.RETRYING]
    rows = (TaskRun.objects.for_tenant(tenant)
            .filter(Q(status__in=[*waiting, Status.RUNNING]) | Q(status=Status.FAILED, finished_at__gte=since))
            .values("priority", "status").annotate(n=Count("pk"), pids=Count("worker_pid", distinct=True)))
    depth = dict.fromkeys(sorted(Priority.values, reverse=True), 0)
    running = failed = busy = 0
    for row in rows:
        if row["status"] in waiting:
            depth[row["priority"]] += row["n"]
        elif row["status"] == Status.RUNNING:
            running, busy = running + row["n"], busy + row["pids"]
        else:
            failed += row["n"]
    return {"queue_depth": {Priority(p).label: n for p, n in depth.items()}, "running": running,
            "failed": failed, "busy_workers": busy}


def cluster_stats() -> list:
    """django-q2's own view of the live clusters (what `qinfo` prints): one Stat per cluster, [] when unknown.

    A cluster publishes its Stat to the broker's cache every few seconds: with Redis every process
    sees every cluster; with the ORM broker and a local-memory cache only the process that runs it.
    """
    from django_q.status import Stat

    try:
        return list(Stat.get_all())
    except Exception:  # noqa: BLE001 - a broker that cannot be read shows as no cluster, never a 500
        return []


def workers_alive(*, now=None) -> dict:
    """Worker processes heartbeating now (the workers ledger, one count), and the clusters django-q2's stats show."""
    now = now or timezone.now()
    fresh = now - dt.timedelta(seconds=workers.STALE_HEARTBEATS * conf.worker_heartbeat())
    live = WorkerProcess.objects.filter(ended_at__isnull=True, last_heartbeat_at__gte=fresh).count()
    stats = cluster_stats()
    return {"clusters": len(stats), "workers": max(live, sum(len(stat.workers) for stat in stats))}


def worker_rows(*, now=None, window_minutes: int = 10) -> dict:
    """Each live cluster (django-q2's Stat) and each of its workers: pid, the run it is on, attempts it finished
    per minute over the last `window_minutes`; two aggregate statements whatever the number of workers."""
    now = now or timezone.now()
    stats = cluster_stats()
    pids = [pid for stat in stats for pid in stat.workers]
    current = {run.worker_pid: run for run in TaskRun.objects.filter(status=Status.RUNNING, worker_pid__in=pids)
               .only("pk", "name", "schema_name", "progress", "worker_pid", "started_at")}
    since = now - dt.timedelta(minutes=window_minutes)
    finished = dict(TaskAttempt.objects.filter(worker_pid__in=pids, finished_at__gte=since)
                    .values("worker_pid").annotate(n=Count("pk")).values_list("worker_pid", "n"))
    clusters = []
    for stat in sorted(stats, key=lambda s: (s.host, str(s.cluster_id))):
        clusters.append({
            "cluster_id": str(stat.cluster_id), "host": stat.host, "pid": stat.pid, "sentinel": stat.sentinel,
            "state": stat.status, "recycled": stat.reincarnations, "last_heartbeat": stat.timestamp,
            "uptime_seconds": stat.uptime() if stat.tob else None,
            "workers": [{"pid": pid, "run": current.get(pid), "state": "busy" if pid in current else "idle",
                         "per_minute": round(finished.get(pid, 0) / window_minutes, 2)} for pid in stat.workers],
        })
    return {"clusters": clusters, "window_minutes": window_minutes}


def worker_list(*, live: bool | None = None) -> QuerySet[WorkerProcess]:
    """Cluster workers, the live ones first, newest first; `live` True: only those not ended (heartbeating or
    not), False: only the ended ones."""
    workers_ = WorkerProcess.objects.order_by(F("ended_at").desc(nulls_first=True), "-started_at")
    if live is not None:
        workers_ = workers_.filter(ended_at__isnull=live)
    return workers_


def worker_heartbeat_age(worker: WorkerProcess, *, now=None) -> float:
    """Seconds since the worker's last heartbeat."""
    return max(0.0, ((now or timezone.now()) - worker.last_heartbeat_at).total_seconds())


def worker_heartbeating(worker: WorkerProcess, *, now=None) -> bool:
    """Not ended, and its last heartbeat within three heartbeats (the rule of /metrics' courtside_workers_alive)."""
    return worker.ended_at is None and (
        worker_heartbeat_age(worker, now=now) <= workers.STALE_HEARTBEATS * conf.worker_heartbeat())


def worker_state(worker: WorkerProcess, *, now=None) -> str:
    """How a worker is, in words: running a run, idle, not heartbeating (and for how long), or how it ended."""
    if worker.ended_at is not None:
        return worker.get_end_display()
    silent = worker_heartbeat_age(worker, now=now)
    if silent > workers.STALE_HEARTBEATS * conf.worker_heartbeat():
        held = " while holding a run" if worker.current_run_id else ""
        return f"Not heartbeating for {silent:.0f} s{held}"
    return "Running a task" if worker.current_run_id else "Idle"
