"""Celery on the Redis broker, the peer bench/tasks.py measures beside django-q2 (run in .venv-peers, never .venv).

    .venv-peers/bin/python bench/peers/celery_peer.py worker      # the workers (prefork, PEERS_WORKERS processes)
    .venv-peers/bin/python bench/peers/celery_peer.py run ...     # the enqueuer: prints one JSON line of figures

bench/tasks.py starts both as subprocesses and reads the enqueuer's JSON. The
environment names the broker and this run's keys: PEERS_REDIS_URL, PEERS_PREFIX
(every key of this run starts with it: kombu's `global_keyprefix`), PEERS_QUEUE.

Priorities, the choice: one queue with kombu's Redis priority steps (a Redis
list per step, taken by one BRPOP in step order, so strictly), steps 0/3/6/9
with 0 the most urgent (Redis reverses AMQP's order): CRITICAL 0, HIGH 3,
NORMAL 6, LOW 9. A separate high queue would not be strict: a worker serving
several queues takes them in turn (kombu's round-robin cycle, or its 'priority'
queue_order_strategy, which still leaves prefetched messages in front).
`worker_prefetch_multiplier=1`, as Celery's documentation asks for priorities:
each worker process reserves one message, the one a CRITICAL task can wait
behind. The same settings serve the throughput rounds (one deployment, one
configuration; Celery's default prefetch of 4 would buy throughput with
priority inversion, like a long django-q2 queue_limit).

Completion: Celery records nothing of a finished task without a result backend.
Each worker process counts its successes with one Redis INCR (task_postrun),
cheaper than a result backend; the enqueuer's clock stops when the count
reaches the tasks it sent. A CRITICAL task writes its start time (time.time())
to a key of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid

import redis
from celery import Celery
from celery.signals import task_postrun

REDIS_URL = os.environ.get("PEERS_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("PEERS_PREFIX", "courtside-peers-celery:")
QUEUE = os.environ.get("PEERS_QUEUE", "bench")
WORKERS = int(os.environ.get("PEERS_WORKERS", "2"))
STEPS = [0, 3, 6, 9]
CRITICAL, NORMAL, LOW = 0, 6, 9
DONE_KEY = f"{PREFIX}done"

app = Celery("courtside-peers", broker=REDIS_URL, set_as_current=True)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX, "priority_steps": STEPS, "sep": ":",
                              "queue_order_strategy": "priority"},
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    task_default_priority=NORMAL,
    task_ignore_result=True,
    task_acks_late=False,  # Celery's default: acknowledged as the worker takes it
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
)

_client: redis.Redis | None = None


def client() -> redis.Redis:
    """One connection per process (each prefork child makes its own on first use)."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(REDIS_URL)
    return _client


@app.task(name="peers.noop")
def noop() -> None:
    return None


@app.task(name="peers.mark")
def mark(token: str) -> None:
    client().set(f"{PREFIX}started:{token}", repr(time.time()))


@task_postrun.connect
def count_done(**_kwargs) -> None:
    client().incr(DONE_KEY)


def wait(predicate, timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"celery peer: timed out waiting for {what}")
        time.sleep(step)


def queued(priority: int) -> int:
    return client().llen(f"{PREFIX}{QUEUE}" + (f":{priority}" if priority else ""))


def done() -> int:
    return int(client().get(DONE_KEY) or 0)


def start_latency(priority: int) -> float:
    token = uuid.uuid4().hex
    key = f"{PREFIX}started:{token}"
    t0 = time.time()
    mark.apply_async(args=[token], priority=priority)
    wait(lambda: client().exists(key), 60, "a CRITICAL task", step=0.005)
    return float(client().get(key)) - t0


def run(options) -> dict:
    r = client()
    r.set(DONE_KEY, 0)
    for _ in range(20):  # warm-up: connections, imports, every worker process forked and serving
        noop.apply_async(priority=NORMAL)
    wait(lambda: done() >= 20, 120, "the warm-up")
    rounds = []
    for _ in range(options.rounds):
        r.set(DONE_KEY, 0)
        started = time.perf_counter()
        for _ in range(options.tasks):
            noop.apply_async(priority=NORMAL)
        submitted = time.perf_counter() - started
        wait(lambda: done() >= options.tasks, 600, "the tasks")
        rounds.append([time.perf_counter() - started, submitted])
        time.sleep(0.2)
    idle = [start_latency(CRITICAL) for _ in range(5)]
    for _ in range(options.backlog):
        noop.apply_async(priority=LOW)
    critical, waiting = [], []
    for _ in range(options.samples):
        critical.append(start_latency(CRITICAL))
        waiting.append(queued(LOW))
        time.sleep(0.05)
    r.delete(f"{PREFIX}{QUEUE}:{LOW}")  # the rest of the backlog, purged
    return {"system": "Celery", "version": __import__("celery").__version__,
            "broker": f"Redis {r.info('server')['redis_version']} (kombu priority steps {STEPS})",
            "rounds": rounds, "idle": idle, "critical": critical, "waiting": waiting}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["worker", "run"])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--samples", type=int, default=20)
    options = parser.parse_args()
    if options.command == "worker":
        app.worker_main(["worker", "--pool", "prefork", "--concurrency", str(WORKERS), "--queues", QUEUE,
                         "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"])
        return
    try:
        print(json.dumps(run(options)))
    finally:
        keys = list(client().scan_iter(f"{PREFIX}*", count=1000))
        if keys:
            client().delete(*keys)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
