"""Where a task's cost goes: submitting and processing measured apart, plain django-q2 against our layer.

    .venv/bin/python bench/tasks_split.py [--tasks 3000] [--workers 2]

bench/tasks.py measures both sides at once, as a user sees them; this one
explains its ratio. Each side first submits every task with no cluster running
(wall and CPU time of the submitting process, CPU time of every PostgreSQL
process), then starts a `qcluster` and times it until the queue is drained (the
cluster's start, about a second, is included and printed). Same broker, same
database (bench_tasks) and queue name for both sides, same run.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402


def postgres_cpu_seconds() -> float:
    """User + system CPU time of every PostgreSQL process on this machine (embedded or not)."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name"]):
        if "postgres" in (process.info["name"] or ""):
            try:
                times = process.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    os.environ["TASKS_QUEUE_NAME"] = f"bench-split-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    setup_django("bench_tasks")

    from django_q.tasks import async_task

    from bench.tasks import start_cluster, stop_cluster, wait
    from tasks import services
    from tasks.engine.broker import get_task_broker
    from tasks.models import QueueMessage, Status, TaskAttempt, TaskRun

    broker = get_task_broker()
    log = ROOT / "var" / "bench-tasks-split-qcluster.log"
    log.parent.mkdir(exist_ok=True)
    count = options.tasks

    def clean() -> None:
        QueueMessage.objects.all().delete()
        TaskAttempt.objects.all().delete()
        TaskRun.objects.all().delete()

    def measure(label: str, submit, drained) -> None:
        clean()
        wall, cpu, pg = time.perf_counter(), time.process_time(), postgres_cpu_seconds()
        for _ in range(count):
            submit()
        wall, cpu, pg = time.perf_counter() - wall, time.process_time() - cpu, postgres_cpu_seconds() - pg
        print(f"{label:9s} submit : {wall / count * 1000:6.3f} ms/task wall, {cpu / count * 1000:6.3f} ms CPU "
              f"(submitter), {pg / count * 1000:6.3f} ms CPU (PostgreSQL)")
        started = time.perf_counter()
        pg = postgres_cpu_seconds()
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        cluster = start_cluster(options.workers, log)
        try:
            wait(drained, 600, label)
            elapsed = time.perf_counter() - started
            pg = postgres_cpu_seconds() - pg  # before the cluster's connections (and their CPU counters) close
        finally:
            stop_cluster(cluster)
        # The cluster and every worker it reaped (recycled ones too), counted once the cluster is waited for.
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cluster_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
        print(f"{label:9s} process: {elapsed / count * 1000:6.3f} ms/task wall ({elapsed:5.2f} s with the cluster's "
              f"start), {pg / count * 1000:6.3f} ms CPU (PostgreSQL), {cluster_cpu / count * 1000:6.3f} ms CPU "
              f"(cluster, with its start)")

    print(f"broker: {broker.info()}   workers: {options.workers}   tasks: {count}")
    measure("plain", lambda: async_task("math.fabs", -1.0, broker=broker,
                                        q_options={"ack_failure": True, "save": False}),
            lambda: QueueMessage.objects.count() == 0)
    measure("courtside", lambda: services.task_submit(name="system.noop"),
            lambda: TaskRun.objects.filter(status=Status.SUCCEEDED).count() == count)
    clean()


if __name__ == "__main__":
    main()
