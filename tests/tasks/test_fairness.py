"""One tenant cannot crowd out the shared cluster (issue 14.9): priority, quota, unfinished runs, fair dispatch."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from core.errors import DomainError
from tasks import actions
from tasks.engine import execution
from tasks.engine.orm_broker import PriorityORMBroker
from tasks.engine.redis_broker import PriorityRedisBroker
from tasks.models import QueueMessage, Status, TaskRun
from tenants.models import UsageDay
from tests.tasks.conftest import REDIS_TEST_URL, redis_available, use_broker, wait_for

RUNS = "/api/v1/tasks/runs/"


def error_of(response, status):
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "detail", "request_id"}
    return error


# ---------------------------------------------------------------- priority from the plan

@pytest.mark.django_db
def test_critical_is_the_operators_unless_the_plan_grants_it(lakers_client, tenant_lakers,
                                                             django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        refused = lakers_client.post(RUNS, {"name": "system.noop", "priority": "CRITICAL"},
                                     content_type="application/json")
        batch = lakers_client.post(f"{RUNS}batch/", {"tasks": [{"key": "a", "name": "system.noop",
                                                               "priority": "CRITICAL"}]},
                                   content_type="application/json")
        high = lakers_client.post(RUNS, {"name": "system.noop", "priority": "HIGH"}, content_type="application/json")
    assert "HIGH" in error_of(refused, 400)["message"] and error_of(batch, 400)
    assert high.status_code == 201
    tenant_lakers.plan.max_task_priority = 3
    tenant_lakers.plan.save()
    with django_capture_on_commit_callbacks(execute=True):
        granted = lakers_client.post(RUNS, {"name": "system.noop", "priority": "CRITICAL"},
                                     content_type="application/json")
    assert granted.status_code == 201 and granted.json()["priority"] == "CRITICAL"
    assert TaskRun.objects.count() == 2


# ---------------------------------------------------------------- each run is an API call

@pytest.mark.django_db
def test_each_run_a_tenant_submits_counts_against_its_daily_calls(lakers_client, warriors_client, tenant_lakers,
                                                                  django_capture_on_commit_callbacks):
    tenant_lakers.plan.api_calls_per_day = 12  # Professional is shared by both test tenants: warriors too
    tenant_lakers.plan.save()
    seven = [{"key": f"k{i}", "name": "system.noop"} for i in range(7)]
    with django_capture_on_commit_callbacks(execute=True):
        first = lakers_client.post(f"{RUNS}batch/", {"tasks": seven}, content_type="application/json")
    assert first.status_code == 201
    day = timezone.now().date()
    assert UsageDay.objects.get(tenant=tenant_lakers, date=day).api_calls == 8  # the request and its 7 runs
    with django_capture_on_commit_callbacks(execute=True):
        second = lakers_client.post(f"{RUNS}batch/", {"tasks": seven}, content_type="application/json")
    error = error_of(second, 429)
    assert error["code"] == "daily_quota_exceeded"
    assert TaskRun.objects.filter(tenant=tenant_lakers).count() == 7  # nothing of the refused batch
    assert UsageDay.objects.get(tenant=tenant_lakers, date=day).api_calls == 9  # its request only
    # The operator's own submissions for the tenant are not the tenant's calls.
    with django_capture_on_commit_callbacks(execute=True):
        actions.task_submit(name="system.noop", tenant=tenant_lakers, by_operator=True)
    assert UsageDay.objects.get(tenant=tenant_lakers, date=day).api_calls == 9


# ---------------------------------------------------------------- unfinished runs per tenant

@pytest.mark.django_db
def test_a_tenants_unfinished_runs_are_capped_and_a_finished_one_frees_a_place(
        lakers_client, tenant_lakers, tenant_warriors, django_capture_on_commit_callbacks):
    tenant_lakers.plan.max_active_task_runs = 3
    tenant_lakers.plan.save()
    with django_capture_on_commit_callbacks(execute=True):
        runs = [actions.task_submit(name="system.noop", tenant=tenant_lakers) for _ in range(3)]
        with pytest.raises(DomainError) as refused:
            actions.task_submit(name="system.noop", tenant=tenant_lakers)
        over = lakers_client.post(f"{RUNS}batch/", {"tasks": [{"key": "a", "name": "system.noop"}]},
                                  content_type="application/json")
    assert refused.value.status == 429 and refused.value.code == "task_run_limit_exceeded"
    assert error_of(over, 429)["code"] == "task_run_limit_exceeded"
    # Another tenant on the same plan is not affected.
    with django_capture_on_commit_callbacks(execute=True):
        actions.task_submit(name="system.noop", tenant=tenant_warriors)
        execution.run_execute(run_id=runs[0].pk)
        actions.task_cancel(run=runs[1])
        actions.task_submit(name="system.noop", tenant=tenant_lakers)
        actions.task_submit(name="system.noop", tenant=tenant_lakers)
        with pytest.raises(DomainError):
            actions.task_submit(name="system.noop", tenant=tenant_lakers)
    assert TaskRun.objects.filter(tenant=tenant_lakers).exclude(status__in=["succeeded", "cancelled"]).count() == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_cannot_both_take_the_last_place(tenant_lakers):
    tenant_lakers.plan.max_active_task_runs = 10
    tenant_lakers.plan.save()
    outcomes, barrier = [], threading.Barrier(4)

    def submit():
        try:
            barrier.wait()
            for _ in range(5):
                try:
                    actions.task_submit(name="system.noop", tenant=tenant_lakers)
                    outcomes.append("ok")
                except DomainError:
                    outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ok") == 10 and outcomes.count("refused") == 10
    assert TaskRun.objects.filter(tenant=tenant_lakers).count() == 10


# ---------------------------------------------------------------- dispatch takes turns by tenant

def _enqueue_for(tenant, count: int, priority: str = "NORMAL") -> list[TaskRun]:
    with transaction.atomic():
        return [actions.task_submit(name="system.noop", tenant=tenant, priority=priority, by_operator=True)
                for _ in range(count)]


def _dispatch_order(broker) -> list[str]:
    order = []
    while batch := broker.dequeue():
        for _ack, payload in batch:
            from django_q.signing import SignedPackage

            order.append(SignedPackage.loads(payload)["args"][0])
    return order


@pytest.fixture(params=["orm", "redis"])
def broker(request, settings):
    name = f"fair-{request.node.name[-20:]}-{timezone.now().timestamp()}"
    instance = use_broker(settings, request.param, name=name, poll=0, bulk=1)
    assert isinstance(instance, PriorityRedisBroker if request.param == "redis" else PriorityORMBroker)
    yield instance
    instance.purge_queue()


@pytest.mark.django_db(transaction=True)
def test_dispatch_within_a_priority_takes_turns_by_tenant_and_keeps_priorities_strict(
        broker, tenant_lakers, tenant_warriors):
    lakers = _enqueue_for(tenant_lakers, 6)
    warriors = _enqueue_for(tenant_warriors, 2)
    operator = [actions.task_submit(name="system.noop", priority="NORMAL")]
    urgent = _enqueue_for(tenant_lakers, 1, priority="HIGH")
    owner = {str(run.pk): label for label, runs in (("L", lakers), ("W", warriors), ("O", operator), ("U", urgent))
             for run in runs}
    order = "".join(owner[run_id] for run_id in _dispatch_order(broker))
    assert order[0] == "U", order  # a higher priority first, whoever floods below it
    # Then each tenant with work in turn, until only the flooder is left.
    assert sorted(order[1:4]) == ["L", "O", "W"] and sorted(order[4:6]) == ["L", "W"], order
    assert order[6:] == "LLLL", order


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("broker_name", ["orm", "redis"])
def test_a_tenant_flooding_the_cluster_leaves_another_tenants_run_starting_promptly(
        cluster_factory, broker_name, tenant_lakers, tenant_warriors):
    if broker_name == "redis" and not redis_available():
        pytest.skip(f"No Redis at {REDIS_TEST_URL}")
    cluster_factory(broker=broker_name, workers=2).start()
    with transaction.atomic():  # all reach the broker together, at commit
        flood = [actions.task_submit(name="system.sleep", arguments={"seconds": 0.05, "steps": 1},
                                      tenant=tenant_lakers) for _ in range(300)]
    wait_for(lambda: TaskRun.objects.filter(tenant=tenant_lakers, status=Status.SUCCEEDED).count() >= 4,
             timeout=60, message="the flood to flow")
    submitted = timezone.now()
    other = actions.task_submit(name="system.whoami", tenant=tenant_warriors)
    wait_for(lambda: TaskRun.objects.get(pk=other.pk).status == Status.SUCCEEDED, timeout=60,
             message="the other tenant's run")
    other.refresh_from_db()
    started_meanwhile = TaskRun.objects.filter(pk__in=[r.pk for r in flood], started_at__gt=submitted,
                                               started_at__lt=other.started_at).count()
    # What the pool had already taken (two workers, a prefetch of two) and a turn or two: not the flood.
    assert started_meanwhile <= 6, started_meanwhile
    assert TaskRun.objects.filter(tenant=tenant_lakers).exclude(status=Status.SUCCEEDED).count() > 100
    TaskRun.objects.filter(tenant=tenant_lakers).exclude(status__in=["succeeded"]).update(status=Status.CANCELLED)
    QueueMessage.objects.all().delete()
