"""Procrastinate, the PostgreSQL-native peer bench/tasks.py measures beside django-q2 (run in .venv-peers, never .venv).

    .venv-peers/bin/python bench/peers/procrastinate_peer.py worker   # one worker process (bench/tasks.py starts 2)
    .venv-peers/bin/python bench/peers/procrastinate_peer.py run ...  # the enqueuer: prints one JSON line of figures

The environment names the database (PEERS_DATABASE_URL: a database of its own
on the bench's PostgreSQL server, its schema applied by `run` on first use) and
this run's queue (PEERS_QUEUE).

"2 workers", the choice: two worker processes with `concurrency=1` each, as
django-q2's and Celery's 2 worker processes (Procrastinate's concurrency is
coroutines on one event loop, one core). The tasks are `async def` (a sync
task would run in a thread per job), LISTEN/NOTIFY wake-ups on (its default),
finished jobs kept (`delete_jobs="never"`, its default): every job is durably
recorded, like our TaskRun. Completion is read from that record (jobs of this
queue with status succeeded); a CRITICAL job's start is its `started` event.

Priorities: Procrastinate 3 has a job `priority` (higher first, strictly: its
fetch orders by priority DESC, id); CRITICAL 3, NORMAL 1, LOW 0, as ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time

import procrastinate
import psycopg

DATABASE_URL = os.environ.get("PEERS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/bench_peers")
QUEUE = os.environ.get("PEERS_QUEUE", "bench")
CRITICAL, NORMAL, LOW = 3, 1, 0

logging.getLogger("procrastinate").setLevel(logging.ERROR)  # its warning about an app in __main__, at every start
app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=DATABASE_URL))


@app.task(name="peers.noop", queue=QUEUE)
async def noop() -> None:
    return None


def sql(query: str, params=()) -> list[tuple]:
    with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
        cursor = connection.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def wait(predicate, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"procrastinate peer: timed out waiting for {what}")
        time.sleep(step)


async def run(options) -> dict:
    monitor = await psycopg.AsyncConnection.connect(DATABASE_URL, autocommit=True)

    async def scalar(query: str, params=()):
        return (await (await monitor.execute(query, params)).fetchone())[0]

    async def await_until(query: str, params, target: int, timeout: float, what: str, step: float = 0.05):
        deadline = time.monotonic() + timeout
        while await scalar(query, params) < target:
            if time.monotonic() > deadline:
                raise SystemExit(f"procrastinate peer: timed out waiting for {what}")
            await asyncio.sleep(step)

    succeeded = "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = %s AND status = 'succeeded'"

    async def clean() -> None:
        # VACUUM without ANALYZE: statistics of an empty queue table make the workers' cached plan of
        # procrastinate_fetch_job_v2 quadratic in the jobs waiting (170-250 ms a fetch behind 1,000 jobs,
        # 5 jobs/s, seen here), a state this bench would otherwise create at every round.
        await monitor.execute("DELETE FROM procrastinate_jobs WHERE queue_name = %s", [QUEUE])
        for table in ("procrastinate_jobs", "procrastinate_events"):
            await monitor.execute(f"VACUUM {table}")

    async def start_latency(priority: int) -> float:
        t0 = time.time()
        job_id = await noop.configure(priority=priority).defer_async()
        started = "SELECT count(*) FROM procrastinate_events WHERE job_id = %s AND type = 'started'"
        await await_until(started, [job_id], 1, 60, "a CRITICAL job", step=0.005)
        at = await scalar("SELECT extract(epoch FROM at)::float8 FROM procrastinate_events "
                          "WHERE job_id = %s AND type = 'started'", [job_id])
        return at - t0

    async with app.open_async():
        await clean()
        for _ in range(20):  # warm-up
            await noop.configure(priority=NORMAL).defer_async()
        await await_until(succeeded, [QUEUE], 20, 120, "the warm-up")
        rounds = []
        for _ in range(options.rounds):
            await clean()
            started = time.perf_counter()
            for _ in range(options.tasks):
                await noop.configure(priority=NORMAL).defer_async()
            submitted = time.perf_counter() - started
            await await_until(succeeded, [QUEUE], options.tasks, 600, "the jobs")
            rounds.append([time.perf_counter() - started, submitted])
        await clean()
        idle = [await start_latency(CRITICAL) for _ in range(5)]
        low = noop.configure(priority=LOW)
        for start in range(0, options.backlog, 1000):  # in batches, as our layer's backlog goes in one transaction
            await low.batch_defer_async(*[{} for _ in range(min(1000, options.backlog - start))])
        critical, waiting = [], []
        for _ in range(options.samples):
            critical.append(await start_latency(CRITICAL))
            waiting.append(await scalar("SELECT count(*) FROM procrastinate_jobs WHERE queue_name = %s "
                                        "AND status = 'todo' AND priority = %s", [QUEUE, LOW]))
            await asyncio.sleep(0.05)
        await monitor.execute("DELETE FROM procrastinate_jobs WHERE queue_name = %s AND status = 'todo'", [QUEUE])
        server = await scalar("SHOW server_version")
        await clean()
    await monitor.close()
    return {"system": "Procrastinate", "version": procrastinate.__version__,
            "broker": f"PostgreSQL {server} (LISTEN/NOTIFY, job priority)",
            "rounds": rounds, "idle": idle, "critical": critical, "waiting": waiting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["schema", "worker", "run"])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--samples", type=int, default=20)
    options = parser.parse_args()
    if options.command == "schema":
        if not sql("SELECT to_regclass('procrastinate_jobs')")[0][0]:
            with app.open():
                app.schema_manager.apply_schema()
        return
    if options.command == "worker":
        app.run_worker(queues=[QUEUE], concurrency=1, wait=True, listen_notify=True, delete_jobs="never")
        return
    print(json.dumps(asyncio.run(run(options))), flush=True)


if __name__ == "__main__":
    main()
