"""How fast a cluster drains a backlog, and what it costs the database per run (issue 19.4, helper "batching").

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/courtside_tasks .venv/bin/python bench/tasks_drain.py

bench/tasks.py submits its runs one by one, so its figure is bound by the submitting client's round trips
(its "submit" time is most of each round). Here N no-op runs are submitted to a queue no cluster serves,
then handed to the running, idle cluster (2 workers, the settings' bulk and queue_limit) in one UPDATE of
their packages' queue, and the time from that commit to the last success is the cluster's own
throughput: where batching claims and outcomes shows (the pusher finds them at its next poll: no NOTIFY
for an UPDATE, the same for the code before and after). It also prints the transactions the database
committed during the drain per run (pg_stat_database;
every hot statement of the layer is its own transaction; this process's polling, one transaction each
50 ms, is subtracted). Options: --tasks N (2000), --workers N (2), --rounds N (3, median and best).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    os.environ["TASKS_QUEUE_NAME"] = f"drain-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    setup_django("bench_tasks")

    from django.conf import settings
    from django.db import connection
    from django.test import override_settings

    from bench.tasks import start_cluster, stop_cluster, wait
    from tasks import services
    from tasks.models import QueueMessage, Status, TaskAttempt, TaskRun

    def commits() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")
            return cursor.fetchone()[0]

    log = ROOT / "var" / "bench-tasks-drain-qcluster.log"
    log.parent.mkdir(exist_ok=True)
    TaskAttempt.objects.all().delete()
    TaskRun.objects.all().delete()
    cluster = start_cluster(options.workers, log)
    rates, per_run = [], []
    try:
        services.task_submit_batch(items=[{"key": str(i), "name": "system.noop"} for i in range(20)])
        wait(lambda: TaskRun.objects.filter(status=Status.SUCCEEDED).count() == 20, 60, "warm-up")
        for number in range(1, options.rounds + 1):
            TaskAttempt.objects.all().delete()
            TaskRun.objects.all().delete()
            with connection.cursor() as cursor:
                for model in (TaskRun, TaskAttempt, QueueMessage):
                    cursor.execute(f"VACUUM (ANALYZE) {model._meta.db_table}")
            time.sleep(0.5)
            items = [{"key": str(i), "name": "system.noop"} for i in range(options.tasks)]
            queue = os.environ["TASKS_QUEUE_NAME"]
            parked = f"{queue}-parked"
            with override_settings(Q_CLUSTER={**settings.Q_CLUSTER, "cluster_name": parked}):
                submit_started = time.perf_counter()
                services.task_submit_batch(items=items)
                submitted = time.perf_counter() - submit_started
            before = commits()
            polls = 0
            started = time.perf_counter()
            QueueMessage.objects.filter(queue=parked).update(queue=queue)

            def done():
                nonlocal polls
                polls += 1
                return not QueueMessage.objects.filter(queue=os.environ["TASKS_QUEUE_NAME"]).exists()

            wait(done, 600, "the drain")
            elapsed = time.perf_counter() - started
            after = commits()
            succeeded = TaskRun.objects.filter(status=Status.SUCCEEDED).count()
            if succeeded != options.tasks:
                raise SystemExit(f"only {succeeded} of {options.tasks} runs succeeded")
            transactions = (after - before - polls - 3) / options.tasks
            rates.append(options.tasks / elapsed)
            per_run.append(transactions)
            print(f"round {number}: {options.tasks / elapsed:7.1f} runs/s ({elapsed:5.2f} s; submitted beforehand in "
                  f"{submitted:4.2f} s)   {transactions:4.2f} database transactions per run   "
                  f"load {os.getloadavg()[0]:.2f}")
        print(f"drain: median {statistics.median(rates):7.1f} runs/s, best {max(rates):7.1f}; "
              f"transactions per run median {statistics.median(per_run):.2f}")
    finally:
        stop_cluster(cluster)
        TaskAttempt.objects.all().delete()
        TaskRun.objects.all().delete()


if __name__ == "__main__":
    main()
