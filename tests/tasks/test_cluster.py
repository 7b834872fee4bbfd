"""The queue's behaviour against a real `manage.py qcluster` process, on the ORM broker and on Redis."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django_q.tasks import async_task
from django_tenants.utils import schema_context

from tasks import actions
from tasks.engine.broker import get_task_broker
from tasks.models import TERMINAL, Priority, Status, TaskRun
from tests.tasks.conftest import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def finished(run: TaskRun, timeout: float = 30) -> TaskRun:
    def done():
        run.refresh_from_db()
        return run.status in TERMINAL

    wait_for(done, timeout=timeout, message=f"{run.name} {run.pk} to finish")
    return run


def test_a_critical_task_submitted_behind_200_low_starts_before_the_remaining_low(cluster):
    with transaction.atomic():  # all 200 reach the broker together, at commit
        lows = [actions.task_submit(name="system.sleep", arguments={"seconds": 0.05, "steps": 1}, priority="LOW")
                for _ in range(200)]
    critical = actions.task_submit(name="system.whoami", priority="CRITICAL")
    finished(critical)
    low_ids = [r.pk for r in lows]
    started_before = TaskRun.objects.filter(pk__in=low_ids, started_at__lt=critical.started_at).count()
    not_started_before = len(low_ids) - started_before
    # Only what the pool had already taken (workers + prefetch) can be ahead of it among the LOW started later.
    overtaking = TaskRun.objects.filter(pk__in=low_ids, started_at__gte=critical.created_at,
                                        started_at__lt=critical.started_at).count()
    bound = cluster.q_cluster["workers"] + cluster.q_cluster["queue_limit"] + 2
    assert overtaking <= bound, (overtaking, bound)
    assert not_started_before >= 100, f"only {not_started_before} LOW were still waiting"
    TaskRun.objects.filter(pk__in=low_ids, status=Status.QUEUED).update(status=Status.CANCELLED)


def test_retries_back_off_exponentially_and_never_start_before_their_delay(cluster):
    run = actions.task_submit(name="system.fail", max_retries=3, backoff_base=0.3, backoff_cap=5)
    finished(run, timeout=40)
    attempts = list(run.attempt_log.order_by("number"))
    assert run.status == Status.FAILED and len(attempts) == 4
    delays = [a.retry_delay for a in attempts[:-1]]
    for delay, nominal in zip(delays, [0.3, 0.6, 1.2], strict=True):
        assert nominal * (1 - run.backoff_jitter) <= delay <= nominal
    for before, after in zip(attempts, attempts[1:], strict=False):
        assert (after.started_at - before.finished_at).total_seconds() >= before.retry_delay - 0.01


def test_a_retried_task_that_later_succeeds_ends_succeeded(cluster):
    run = actions.task_submit(name="system.fail", arguments={"succeed_on_attempt": 2}, max_retries=2,
                               backoff_base=0.1)
    finished(run)
    assert (run.status, run.attempts) == (Status.SUCCEEDED, 2)


def test_a_cancelled_queued_task_never_starts(cluster):
    run = actions.task_submit(name="system.whoami", countdown=0.5)
    actions.task_cancel(run=run)
    marker = actions.task_submit(name="system.noop", countdown=1.0, priority="LOW")
    finished(marker)
    run.refresh_from_db()
    assert (run.status, run.attempts, run.started_at) == (Status.CANCELLED, 0, None)


def test_a_running_task_stops_at_its_next_progress_report_after_a_cancel(cluster):
    run = actions.task_submit(name="system.sleep", arguments={"seconds": 30, "steps": 300})

    def reporting():
        run.refresh_from_db()
        return run.status == Status.RUNNING and run.progress > 0

    wait_for(reporting, timeout=20, message="the task to report progress")
    actions.task_cancel(run=run, cancelled_by="test")
    finished(run, timeout=10)
    assert run.status == Status.CANCELLED and run.progress < 1
    assert run.attempt_log.get().outcome == "cancelled"


def test_a_timeout_is_recorded_as_failed_and_the_cluster_goes_on(cluster):
    slow = actions.task_submit(name="system.sleep", arguments={"seconds": 60, "steps": 1}, timeout=1)
    finished(slow, timeout=30)
    assert slow.status == Status.FAILED and "Timed out" in slow.error
    assert slow.attempt_log.get().outcome == "timed_out"
    after = [actions.task_submit(name="system.whoami") for _ in range(3)]
    assert all(finished(run).status == Status.SUCCEEDED for run in after)


def test_a_timed_out_task_is_retried_per_its_policy(cluster):
    run = actions.task_submit(name="system.sleep", arguments={"seconds": 60, "steps": 1}, timeout=1,
                               max_retries=1, backoff_base=0.1)
    finished(run, timeout=30)
    assert run.status == Status.FAILED
    assert list(run.attempt_log.values_list("outcome", flat=True)) == ["timed_out", "timed_out"]


def test_dependencies_run_in_order_and_a_failed_one_cancels_its_dependents(cluster):
    a, b, c, bad, child, grandchild, anyway = actions.task_submit_batch(items=[
        {"key": "a", "name": "system.sleep", "args": {"seconds": 0.3, "steps": 1}},
        {"key": "b", "name": "system.sleep", "args": {"seconds": 0.1, "steps": 1}, "depends_on": ["a"]},
        {"key": "c", "name": "system.noop", "depends_on": ["a", "b"], "priority": "CRITICAL"},
        {"key": "bad", "name": "system.fail"},
        {"key": "child", "name": "system.noop", "depends_on": ["bad"]},
        {"key": "grandchild", "name": "system.noop", "depends_on": ["child"]},
        {"key": "anyway", "name": "system.noop", "depends_on": ["bad"], "run_if_dependency_fails": True},
    ])
    for run in (a, b, c, bad, child, grandchild, anyway):
        finished(run)
    assert [r.status for r in (a, b, c)] == [Status.SUCCEEDED] * 3
    assert b.started_at >= a.finished_at and c.started_at >= b.finished_at
    assert (bad.status, child.status, grandchild.status, anyway.status) == (
        Status.FAILED, Status.CANCELLED, Status.CANCELLED, Status.SUCCEEDED)
    assert child.attempts == grandchild.attempts == 0


def test_a_task_submitted_for_a_tenant_writes_only_to_its_schema(cluster, tenant_lakers, tenant_warriors):
    from league.models import StatModel
    from tests.tasks.conftest import make_stat_lines

    with schema_context("lakers"):
        make_stat_lines()
    run = actions.task_submit(name="league.train_points_model", arguments={"name": "cluster-pts"},
                               tenant=tenant_lakers, priority=Priority.HIGH)
    finished(run, timeout=60)
    assert run.status == Status.SUCCEEDED, run.error
    with schema_context("lakers"):
        assert StatModel.objects.filter(name="cluster-pts", status="ready").exists()
    with schema_context("warriors"):
        assert not StatModel.objects.exists()
    follow_ups = [actions.task_submit(name="system.whoami") for _ in range(4)]
    assert {finished(r).result["schema"] for r in follow_ups} == {"public"}


def test_a_plain_task_that_leaves_its_schema_does_not_move_the_next_task_in_that_worker(
        cluster, tenant_lakers, tmp_path):
    polluter = tmp_path / "polluter"
    async_task("tests.tasks.jobs.switch_schema_and_stay", "lakers", str(polluter), broker=get_task_broker())
    dirty_pid = int(wait_for(lambda: polluter.exists() and polluter.read_text(), timeout=30,
                             message="the misbehaving task"))
    seen = []
    # Keep asking until a task lands on the worker that misbehaved (bounded).
    for _ in range(40):
        run = finished(actions.task_submit(name="system.whoami"))
        seen.append((run.result["pid"], run.result["schema"]))
        if run.result["pid"] == dirty_pid:
            break
    assert (dirty_pid, "public") in seen, seen
    assert {schema for _, schema in seen} == {"public"}


def test_a_plain_task_enqueued_in_a_tenant_context_runs_in_that_tenant(cluster, tenant_lakers, tenant_warriors,
                                                                       tmp_path):
    from league.models import Team

    with schema_context("lakers"):
        async_task("tests.tasks.jobs.create_team_here", 4242, broker=get_task_broker())
    marker = tmp_path / "after"
    async_task("tests.tasks.jobs.report_schema", str(marker), broker=get_task_broker())

    def created():
        with schema_context("lakers"):
            return Team.objects.filter(nba_id=4242).exists()

    wait_for(created, timeout=30, message="the team in lakers")
    wait_for(marker.exists, timeout=30, message="the plain public task")
    assert marker.read_text().split()[1] == "public"
    with schema_context("warriors"):
        assert not Team.objects.filter(nba_id=4242).exists()
    assert connection.schema_name == "public"


def test_progress_is_visible_while_the_task_runs(cluster):
    run = actions.task_submit(name="system.sleep", arguments={"seconds": 2, "steps": 10})
    seen = set()

    def midway():
        run.refresh_from_db()
        if run.status == Status.RUNNING:
            seen.add(round(run.progress, 1))
        return run.status in TERMINAL

    wait_for(midway, timeout=30, interval=0.05, message="the sleep to finish")
    assert run.status == Status.SUCCEEDED and run.progress == 1.0
    assert any(0 < p < 1 for p in seen), seen


def test_delayed_work_does_not_start_before_its_time(cluster):
    run = actions.task_submit(name="system.whoami", countdown=1.0)
    finished(run)
    assert (run.started_at - run.created_at).total_seconds() >= 0.99


def test_the_broker_reports_what_waits(cluster):
    broker = get_task_broker()
    assert broker.ping()
    actions.task_submit(name="system.noop", countdown=60)
    assert broker.delayed_size() >= 1


def test_a_task_that_swallows_its_timeout_is_recorded_timed_out_before_its_worker_is_killed(cluster):
    # django-q2's SIGALRM is caught by the task; its guard kills the worker ~3 s after the timeout. The
    # worker's watchdog records the attempt first: timed out (not lost), retried per policy, then failed.
    stubborn = actions.task_submit(name="system.sleep", arguments={"seconds": 8, "steps": 1, "ignore_timeout": True},
                                    timeout=1, max_retries=1, backoff_base=0.5, backoff_cap=0.5)
    finished(stubborn, timeout=60)
    assert stubborn.status == Status.FAILED, stubborn.error
    assert "did not stop at the timeout signal" in stubborn.error
    assert list(stubborn.attempt_log.values_list("outcome", flat=True)) == ["timed_out", "timed_out"]
    assert stubborn.lost_attempts == 0
    after = [actions.task_submit(name="system.whoami") for _ in range(3)]
    assert all(finished(run).status == Status.SUCCEEDED for run in after)
