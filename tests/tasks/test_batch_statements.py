"""What a batch of runs costs the database: statements per batch, not per run (issue 19.4).

Against the real PostgreSQL broker, in this process (the pusher's dequeue, the worker's execution and the
monitor's acknowledgement called as the cluster calls them), counting every statement the driver sends
(psycopg's Cursor.execute, which Django's cursors and our raw ones both go through):

- the dequeue of N packages takes them and claims their N runs in one statement;
- the successes of N runs are recorded, and their N packages deleted, in one statement
  (`acknowledge_batch`), and the monitor's acknowledgements one by one reach the database batched
  (a group commit: whatever arrived while the last batch was being written goes in the next one);
- every run is still recorded: succeeded, its attempt row written, its package gone.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from django.test import override_settings
from django_q.signing import SignedPackage

from tasks import actions
from tasks.engine import acknowledgements
from tasks.engine.broker import get_task_broker
from tasks.engine.delivery import Delivery
from tasks.models import QueueMessage, Status, TaskAttempt, TaskRun

pytestmark = pytest.mark.django_db(transaction=True)

N = 40


@contextmanager
def counted_statements():
    """Every statement any thread of this process sends to PostgreSQL while inside, as SQL text."""
    sent: list[str] = []
    lock = threading.Lock()
    original = psycopg.Cursor.execute

    def execute(self, query, *args, **kwargs):
        with lock:
            sent.append(query if isinstance(query, str) else str(query))
        return original(self, query, *args, **kwargs)

    psycopg.Cursor.execute = execute
    try:
        yield sent
    finally:
        psycopg.Cursor.execute = original


@pytest.fixture
def orm_queue():
    name = f"b{uuid.uuid4().hex[:10]}"
    q_cluster = {"name": "courtside", "cluster_name": name, "workers": 2, "timeout": 300, "retry": 360,
                 "max_attempts": 0, "ack_failures": True, "save_limit": -1, "catch_up": False, "poll": 0.05,
                 "queue_limit": 2, "bulk": N, "orm": "default",
                 "broker_class": "tasks.engine.orm_broker.PriorityORMBroker", "lease_grace": 10}
    with override_settings(Q_CLUSTER=q_cluster):
        yield get_task_broker()


def execute_in_worker(ack_id, payload):
    """What a cluster worker does with one package (django-q2's worker, our pre_execute receiver, the runner)."""
    from tasks.runner import execute

    task = SignedPackage.loads(payload)
    task["ack_id"] = ack_id
    Delivery.begin(task=task)
    try:
        execute(*task["args"], **task["kwargs"])
    finally:
        Delivery.end()
    return task["ack_id"]


def test_a_dequeue_of_n_packages_claims_their_n_runs_in_one_statement(orm_queue):
    runs = [actions.task_submit(name="system.noop") for _ in range(N)]
    with counted_statements() as sent:
        packages = orm_queue.dequeue()
    assert len(packages) == N
    assert len(sent) == 1, sent
    claimed = TaskRun.objects.filter(pk__in=[r.pk for r in runs], status=Status.CLAIMED, attempts=1).count()
    assert claimed == N
    assert all(getattr(ack_id, "claim", None) for ack_id, _ in packages)


def test_the_successes_of_n_runs_are_recorded_with_their_packages_deleted_in_one_statement(orm_queue):
    runs = [actions.task_submit(name="system.noop") for _ in range(N)]
    packages = orm_queue.dequeue()
    with counted_statements() as sent:
        acks = [execute_in_worker(ack_id, payload) for ack_id, payload in packages]
    assert sent == []  # the worker writes nothing for a short success: it travels in the acknowledgement
    with counted_statements() as sent:
        orm_queue.acknowledge_batch(acks)
    sent = [sql for sql in sent if not sql.startswith("PREPARE ")]  # planned once per connection
    assert len(sent) == 1, sent
    ids = [r.pk for r in runs]
    assert TaskRun.objects.filter(pk__in=ids, status=Status.SUCCEEDED, started_at__isnull=False).count() == N
    assert TaskAttempt.objects.filter(run__in=ids, outcome="succeeded", number=1).count() == N
    assert not QueueMessage.objects.filter(run_id__in=ids).exists()


def test_the_monitors_acknowledgements_one_by_one_reach_the_database_in_batches(orm_queue):
    """django-q2's own monitor loop, run here on a real result queue holding N finished runs, then STOP."""
    import multiprocessing

    from django_q.monitor import monitor

    runs = [actions.task_submit(name="system.noop") for _ in range(N)]
    results = multiprocessing.Queue()
    for ack_id, payload in orm_queue.dequeue():
        task = SignedPackage.loads(payload)
        task["ack_id"] = execute_in_worker(ack_id, payload)
        task.update(success=True, result="succeeded", stopped=task["started"])
        results.put(task)
    time.sleep(0.2)  # the queue's feeder thread has put them all through its pipe
    results.put("STOP")
    ids = [r.pk for r in runs]
    orm_queue.result_queue = results  # what the cluster's monitor process finds itself (acknowledgements)
    try:
        with counted_statements() as sent:
            monitor(results, orm_queue)
            # Each result had another behind it (the last, STOP): all are held until the monitor process
            # exits, whose finalizer (multiprocessing's, registered by tasks.engine.acknowledgements) writes them.
            assert TaskRun.objects.filter(pk__in=ids, status=Status.SUCCEEDED).count() == 0
            acknowledgements.flush()
    finally:
        del orm_queue.result_queue
    writes = [sql for sql in sent if sql.startswith("BEGIN; SET LOCAL synchronous_commit")]
    assert 1 <= len(writes) <= 3, f"{len(writes)} statements recorded {N} successes: {sent}"
    assert TaskRun.objects.filter(pk__in=ids, status=Status.SUCCEEDED).count() == N
    assert TaskAttempt.objects.filter(run__in=ids, outcome="succeeded").count() == N
    assert not QueueMessage.objects.filter(run_id__in=ids).exists()


def test_a_lone_success_is_recorded_at_once_even_in_the_monitor(orm_queue):
    """An idle cluster's monitor holds nothing back: the queue is empty after the result, so it writes now."""
    import multiprocessing

    from django_q.monitor import monitor

    run = actions.task_submit(name="system.noop")
    results = multiprocessing.Queue()
    (ack_id, payload), = orm_queue.dequeue()
    task = SignedPackage.loads(payload)
    task["ack_id"] = execute_in_worker(ack_id, payload)
    task.update(success=True, result="succeeded", stopped=task["started"])
    recorded = []
    orm_queue.result_queue = results

    def check_then_stop(sender, **kwargs):
        recorded.append(TaskRun.objects.get(pk=run.pk).status)
        results.put("STOP")

    from django_q.signals import post_execute

    post_execute.connect(check_then_stop, dispatch_uid="test-lone-success")
    try:
        results.put(task)
        monitor(results, orm_queue)
    finally:
        post_execute.disconnect(dispatch_uid="test-lone-success")
        del orm_queue.result_queue
    assert recorded == [Status.SUCCEEDED]


# ---------------------------------------------------------------- the Redis broker and a stream of results

@pytest.fixture
def redis_queue(settings):
    from tests.tasks.conftest import use_broker

    broker = use_broker(settings, "redis", name=f"b{uuid.uuid4().hex[:10]}", poll=0.05, queue_limit=2, bulk=N)
    yield broker
    broker.purge_queue()


def test_a_redis_dequeue_takes_n_packages_in_one_round_trip_and_claims_their_runs_in_one_statement(redis_queue):
    runs = [actions.task_submit(name="system.noop") for _ in range(N)]
    redis_queue.settle()  # the submissions' pushes answered
    commands = []
    original = redis_queue.connection.execute_command

    def counted(*args, **kwargs):
        commands.append(args[0])
        return original(*args, **kwargs)

    redis_queue.connection.execute_command = counted
    try:
        with counted_statements() as sent:
            packages = redis_queue.dequeue()
    finally:
        del redis_queue.connection.execute_command
    assert len(packages) == N
    assert len(commands) == 1, commands
    assert len(sent) == 1, sent
    ids = [r.pk for r in runs]
    assert TaskRun.objects.filter(pk__in=ids, status=Status.CLAIMED, attempts=1).count() == N
    # The worker starts each without a statement of its own; the successes go in one statement.
    with counted_statements() as sent:
        acks = [execute_in_worker(ack_id, payload) for ack_id, payload in packages]
    assert sent == []
    redis_queue.acknowledge_batch(acks)
    assert TaskRun.objects.filter(pk__in=ids, status=Status.SUCCEEDED, started_at__isnull=False).count() == N
    assert TaskAttempt.objects.filter(run__in=ids, outcome="succeeded", number=1).count() == N


def test_a_stream_of_results_each_alone_on_the_queue_reaches_the_database_in_a_few_statements(orm_queue,
                                                                                              monkeypatch):
    """Results arriving a few milliseconds apart (each found alone on the queue): the monitor lingers for the
    next one instead of writing one statement per result (a linger of 0.2 s here, so a loaded machine's
    late wake-ups stay within it)."""
    import multiprocessing

    from django_q.monitor import monitor

    monkeypatch.setattr(acknowledgements, "LINGER_SECONDS", float(os.environ.get("TEST_LINGER_SECONDS", "0.2")))
    runs = [actions.task_submit(name="system.noop") for _ in range(N)]
    tasks = []
    for ack_id, payload in orm_queue.dequeue():
        task = SignedPackage.loads(payload)
        task["ack_id"] = execute_in_worker(ack_id, payload)
        task.update(success=True, result="succeeded", stopped=task["started"])
        tasks.append(task)
    results = multiprocessing.Queue()

    def stream():
        for task in tasks:
            results.put(task)
            time.sleep(0.004)  # well under LINGER_SECONDS, well over the monitor's work per result
        time.sleep(0.6)  # the last batch written before the monitor stops
        results.put("STOP")

    ids = [r.pk for r in runs]
    orm_queue.result_queue = results
    feeder = threading.Thread(target=stream)
    try:
        with counted_statements() as sent:
            feeder.start()
            monitor(results, orm_queue)
    finally:
        feeder.join()
        del orm_queue.result_queue
    writes = [sql for sql in sent if sql.startswith("BEGIN; SET LOCAL synchronous_commit")]
    assert 1 <= len(writes) <= N // 4, f"{len(writes)} statements recorded {N} successes"
    assert TaskRun.objects.filter(pk__in=ids, status=Status.SUCCEEDED).count() == N
    assert not QueueMessage.objects.filter(run_id__in=ids).exists()


def test_a_redis_dequeue_whose_claim_fails_hands_its_packages_out_unclaimed_for_their_workers(redis_queue,
                                                                                               monkeypatch):
    """The packages are off Redis once taken: a claim statement that fails must not lose them."""
    from django.db import DatabaseError

    from tasks.engine import redis_broker

    runs = [actions.task_submit(name="system.noop") for _ in range(3)]
    redis_queue.settle()

    def refused(*args, **kwargs):
        raise DatabaseError("the database is away")

    monkeypatch.setattr(redis_broker, "soft_write", refused)
    packages = redis_queue.dequeue()
    monkeypatch.undo()
    assert len(packages) == 3 and all(ack_id is None for ack_id, _ in packages)
    ids = [r.pk for r in runs]
    assert TaskRun.objects.filter(pk__in=ids, status=Status.QUEUED).count() == 3
    redis_queue.acknowledge_batch([execute_in_worker(ack_id, payload) for ack_id, payload in packages])
    assert TaskRun.objects.filter(pk__in=ids, status=Status.SUCCEEDED, attempts=1).count() == 3
