"""Where one no-op task's cost goes: CPU per process, PostgreSQL commits and rows, Redis commands, per task.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/courtside REDIS_URL=redis://127.0.0.1:6379/9 \
        .venv/bin/python bench/tasks_cost.py [ours|plain] [--tasks 2000] [--workers 2]

Runs a real cluster (`manage.py qcluster`, as bench/tasks.py starts it) on the broker the settings choose,
submits --tasks no-op tasks one by one (ours: `task_submit`, plain: django-q2's `async_task` through the
same broker) and waits for the last. Printed: tasks/s with the submission's share, the load average, then
per task: each process's CPU (the submitter, the cluster's processes, workers already recycled counted in
their parent's reaped-children time, the PostgreSQL backends of this database, Redis), the database's
commits and rows written (pg_stat_database), and Redis's commands by name (INFO commandstats; a script's
inner commands are counted by name as well as its EVALSHA). CPU per task grows with the machine's load
(each wake-up of a process that waits costs more on a busy core): compare ours and plain in one run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=["ours", "plain"], nargs="?", default="ours")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args()
    os.environ["TASKS_QUEUE_NAME"] = f"cost-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("TASKS_REDIS_PREFIX", f"courtside-cost-{os.getpid()}")
    setup_django("bench_tasks")

    import psutil
    from django.db import connection
    from django_q.tasks import async_task

    from bench.tasks import start_cluster, stop_cluster, wait
    from tasks import actions
    from tasks.engine.broker import get_task_broker
    from tasks.models import Status, TaskAttempt, TaskRun

    n = options.tasks
    TaskAttempt.objects.all().delete()
    TaskRun.objects.all().delete()
    broker = get_task_broker()
    cluster = start_cluster(options.workers, ROOT / "var" / "bench-tasks-cost-qcluster.log")
    redis = None
    if hasattr(broker, "delayed_key"):
        redis = broker.connection
    try:
        for _ in range(20):
            actions.task_submit(name="system.noop")
        wait(lambda: TaskRun.objects.filter(status=Status.SUCCEEDED).count() == 20, 60, "the warm-up")
        TaskAttempt.objects.all().delete()
        TaskRun.objects.all().delete()
        with connection.cursor() as cursor:
            for table in ("tasks_taskrun", "tasks_taskattempt"):
                cursor.execute(f"VACUUM (ANALYZE) {table}")
        time.sleep(1.0)

        def processes() -> dict[int, str]:
            found = {os.getpid(): "submitter (this process)"}
            root = psutil.Process(cluster.pid)
            for process in [root, *root.children(recursive=True)]:
                found[process.pid] = "cluster process" if process.pid != root.pid else "cluster (qcluster)"
            database = connection.settings_dict["NAME"]
            for process in psutil.process_iter(["name", "cmdline"]):
                try:
                    line = " ".join(process.info["cmdline"] or [])
                except psutil.Error:
                    continue
                if "redis-server" in (process.info["name"] or ""):
                    found[process.pid] = "redis-server"
                elif line.startswith("postgres:") and f" {database} " in line:
                    found[process.pid] = "postgres backend"
            return found

        def cpu(pids) -> dict[int, tuple[float, float]]:
            times = {}
            for pid in pids:
                try:
                    t = psutil.Process(pid).cpu_times()
                    times[pid] = (t.user + t.system, t.children_user + t.children_system)
                except psutil.Error:
                    pass
            return times

        def database_counts():
            with connection.cursor() as cursor:
                cursor.execute("SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database "
                               "WHERE datname = current_database()")
                return cursor.fetchone()

        def redis_counts() -> dict[str, int]:
            if redis is None:
                return {}
            return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in redis.info("commandstats").items()}

        names = processes()
        cpu_before, db_before, redis_before = cpu(names), database_counts(), redis_counts()
        started = time.perf_counter()
        for _ in range(n):
            if options.side == "ours":
                actions.task_submit(name="system.noop")
            else:
                async_task("math.fabs", -1.0, broker=broker, q_options={"ack_failure": True, "save": False})
        submitted = time.perf_counter() - started
        if options.side == "ours":
            wait(lambda: TaskRun.objects.filter(status=Status.SUCCEEDED).count() == n, 600, "our tasks")
        else:
            wait(lambda: broker.queue_size() == 0, 600, "plain tasks")
        elapsed = time.perf_counter() - started
        names.update(processes())
        cpu_after, db_after, redis_after = cpu(names), database_counts(), redis_counts()

        print(f"{options.side}: {n / elapsed:.1f} tasks/s ({elapsed:.2f} s, submission {submitted:.2f} s)   "
              f"load {open('/proc/loadavg').read().strip()}")
        total = 0.0
        for pid, name in sorted(names.items(), key=lambda item: item[1]):
            own, reaped = (after - before for after, before in
                           zip(cpu_after.get(pid, (0, 0)), cpu_before.get(pid, (0, 0)), strict=True))
            if reaped > 0.005 and name.startswith("cluster"):
                total += reaped
                print(f"  {pid:>7} {'recycled workers of ' + name:40s} {reaped * 1e6 / n:7.0f} us/task")
            if own > 0.005 and pid in cpu_before:
                total += own
                print(f"  {pid:>7} {name:40s} {own * 1e6 / n:7.0f} us/task")
        print(f"  CPU in all: {total * 1e6 / n:.0f} us/task (processes started during the run not counted)")
        commits, inserted, updated, deleted = ((after - before) / n for after, before in
                                               zip(db_after, db_before, strict=True))
        print(f"  PostgreSQL per task: {commits:.2f} commits, rows {inserted:.2f} inserted, {updated:.2f} updated, "
              f"{deleted:.2f} deleted")
        if redis is not None:
            calls = {name: (redis_after[name] - redis_before.get(name, 0)) / n for name in redis_after}
            print("  Redis per task: " + ", ".join(f"{name} {count:.2f}" for name, count in
                                                  sorted(calls.items(), key=lambda item: -item[1]) if count >= 0.01))
    finally:
        stop_cluster(cluster)
        TaskAttempt.objects.all().delete()
        TaskRun.objects.all().delete()
        broker.purge_queue()


if __name__ == "__main__":
    main()
