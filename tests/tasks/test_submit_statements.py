"""What one submission costs: statements to PostgreSQL and round trips to Redis, and neither grows (issue 19.4).

Counted in this process against the real PostgreSQL and Redis, on both brokers, outside any transaction
(the path the API and bench/tasks.py take): every statement psycopg sends (Django's cursors and our raw
and prepared ones all go through psycopg's Cursor.execute) and every write to a Redis socket (one per
command, one per pipeline: a round trip each).

- The operator's submission: one statement (the run's row; on the ORM broker its package in the same
  statement) and on Redis one push after it, so the row is committed before the broker has the package.
- A tenant's own submission (its plan's daily quota and cap on unfinished runs): two statements, the
  admission with the cap read in it, and the row. The search_path, the cap read on its own and the
  admission were four.
- A batch's packages reach the broker together once committed: one Redis pipeline, or one INSERT of the
  packages, not one round trip per run.
- None of these grow with the runs submitted before.
"""

from __future__ import annotations

import threading
import time
import uuid
from contextlib import contextmanager
from urllib.parse import urlparse

import psycopg
import pytest
from django.utils import timezone
from redis.connection import AbstractConnection

from core.errors import DomainError
from tasks import actions
from tasks.engine.broker import get_task_broker
from tasks.models import QueueMessage, Status, TaskRun
from tenants.models import UsageDay
from tests.etcd import TcpProxy
from tests.tasks.conftest import REDIS_TEST_URL, redis_available, use_broker

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def counted():
    """(statements sent to PostgreSQL, writes to Redis sockets) by any thread of this process while inside."""
    statements, writes = [], []
    lock = threading.Lock()
    execute, send = psycopg.Cursor.execute, AbstractConnection.send_packed_command

    def counting_execute(self, query, *args, **kwargs):
        with lock:
            statements.append(query if isinstance(query, str) else str(query))
        return execute(self, query, *args, **kwargs)

    def counting_send(self, command, *args, **kwargs):
        with lock:
            writes.append(command)
        return send(self, command, *args, **kwargs)

    psycopg.Cursor.execute, AbstractConnection.send_packed_command = counting_execute, counting_send
    try:
        yield statements, writes
    finally:
        psycopg.Cursor.execute, AbstractConnection.send_packed_command = execute, send


@pytest.fixture(params=["orm", "redis"])
def broker(request, settings):
    instance = use_broker(settings, request.param, name=f"cost-{uuid.uuid4().hex[:10]}")
    instance.is_redis = request.param == "redis"
    yield instance
    instance.purge_queue()


def cost(submit) -> tuple[int, int, list[str]]:
    with counted() as (statements, writes):
        submit()
    return len(statements), len(writes), statements


def test_an_operator_submission_is_one_statement_and_one_push(broker):
    def submit():
        actions.task_submit(name="system.noop")

    for _ in range(3):
        submit()  # the connection open, the statement prepared
    first = cost(submit)
    for _ in range(30):
        submit()
    later = cost(submit)
    assert first[:2] == later[:2], (first, later)
    statements, writes, sent = first
    assert statements == 1, sent
    assert writes == (1 if broker.is_redis else 0)
    assert broker.queue_size() == 35
    assert TaskRun.objects.filter(status=Status.QUEUED).count() == 35


def test_a_tenants_own_submission_is_two_statements_metered_and_capped(broker, tenant_lakers):
    plan = tenant_lakers.plan
    plan.api_calls_per_day, plan.max_active_task_runs = 10_000, 40
    plan.save()

    def submit():
        actions.task_submit(name="system.noop", tenant=tenant_lakers)

    def calls() -> int:
        return UsageDay.objects.get(tenant=tenant_lakers, date=timezone.now().date()).api_calls

    for _ in range(3):
        submit()
    before = calls()
    first = cost(submit)
    for _ in range(30):
        submit()
    later = cost(submit)
    assert first[:2] == later[:2], (first, later)
    statements, writes, sent = first
    assert statements <= 2, sent
    assert writes == (1 if broker.is_redis else 0)
    assert calls() == before + 32  # each run still one call against the quota
    assert TaskRun.objects.filter(tenant=tenant_lakers, status=Status.QUEUED).count() == 35

    for _ in range(5):
        submit()  # 40: the cap
    spent = calls()
    with pytest.raises(DomainError) as refused:
        submit()
    assert refused.value.code == "task_run_limit_exceeded" and refused.value.detail["unfinished"] == 40
    assert calls() == spent  # a run the cap refuses spends no call
    assert TaskRun.objects.filter(tenant=tenant_lakers).count() == 40


def test_a_batchs_packages_reach_the_broker_together(broker):
    actions.task_submit(name="system.noop")  # the connections open (a push's and the queue's), the scripts loaded
    assert broker.queue_size() == 1
    items = [{"key": str(i), "name": "system.noop"} for i in range(50)]
    with counted() as (statements, writes):
        runs = actions.task_submit_batch(items=items)
    packages = [s for s in statements if "tasks_queuemessage" in s]
    assert len(packages) <= 1, f"{len(packages)} statements for the packages"
    assert len(writes) <= (1 if broker.is_redis else 0), f"{len(writes)} Redis round trips"
    assert broker.queue_size() == 51
    if not broker.is_redis:
        assert {run.pk for run in runs} <= set(QueueMessage.objects.values_list("run_id", flat=True))


@pytest.fixture
def slow_redis_broker(settings):
    if not redis_available():
        pytest.skip(f"No Redis at {REDIS_TEST_URL}")
    target = urlparse(REDIS_TEST_URL)
    with TcpProxy(target.port or 6379, answer_delay=0.5) as proxy:  # each Redis answer held 0.5 s
        name = f"slow-{uuid.uuid4().hex[:10]}"
        settings.Q_CLUSTER = {**settings.Q_CLUSTER, "cluster_name": name, "redis_prefix": f"courtside-test-{name}",
                              "redis": f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}",
                              "broker_class": "tasks.engine.redis_broker.PriorityRedisBroker"}
        instance = get_task_broker()
        yield instance
        instance.purge_queue()


def test_a_submission_does_not_wait_for_redis_to_answer_its_push(slow_redis_broker):
    """Redis answering each command 0.5 s late: five submissions take far less than 5 x 0.5 s (each waited
    for its push's answer before), and every package is in Redis once this process reads the queue."""
    actions.task_submit(name="system.noop")  # the connection's handshake, answered late too
    started = time.monotonic()
    runs = [actions.task_submit(name="system.noop") for _ in range(5)]
    assert time.monotonic() - started < 1.5
    assert slow_redis_broker.queue_size() == 6  # the answers read first
    assert TaskRun.objects.filter(pk__in=[run.pk for run in runs], status=Status.QUEUED).count() == 5


def test_a_push_redis_refuses_is_sent_again(broker):
    """A push refused (here NOSCRIPT: the script's digest unknown to Redis, as after a restart) is read as
    refused with the next read and sent again, waited for: the package is in the queue."""
    if not broker.is_redis:
        pytest.skip("Redis only")
    actions.task_submit(name="system.noop")
    real = broker._push.sha
    broker._push.sha = "0" * 40
    try:
        actions.task_submit(name="system.noop")
        assert broker.queue_size() == 2
    finally:
        broker._push.sha = real
