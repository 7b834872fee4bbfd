"""The task layer's services, run in this process (no cluster): validation, execution, retries, dependencies."""

from __future__ import annotations

import datetime as dt
import os

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule
from django_tenants.utils import schema_context

from tasks import actions
from tasks.engine import broker, execution
from tasks.engine import outcome as outcomes
from tasks.engine.broker import Acknowledgement, get_task_broker
from tasks.engine.delivery import Delivery
from tasks.models import Priority, QueueMessage, Status, TaskAttempt, TaskEffect, TaskRun
from tests.tasks.conftest import make_stat_lines

# The ORM broker (packages are QueueMessage rows) whatever REDIS_URL says: tests.tasks.conftest.use_broker.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("orm_broker")]


def nothing_queued():
    return TaskRun.objects.count() == 0 and QueueMessage.objects.count() == 0


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"name": "no.such.task"}, "Unknown task"),
        ({"name": "system.sleep", "arguments": {"seconds": "long"}}, "seconds"),
        ({"name": "system.sleep", "arguments": {"nap": 1}}, "Additional properties"),
        ({"name": "system.noop", "countdown": -5}, "negative"),
        ({"name": "system.noop", "run_at": timezone.now() - dt.timedelta(hours=1)}, "past"),
        ({"name": "system.noop", "priority": "URGENT"}, "Priority"),
        ({"name": "league.recompute_season_averages"}, "tenant"),
        ({"name": "system.noop", "depends_on": ["00000000-0000-0000-0000-000000000000"]}, "No such task run"),
        ({"name": "system.noop", "timeout": 100000}, "timeout"),
    ],
)
def test_bad_submissions_are_refused_and_nothing_is_queued(kwargs, fragment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError) as error:
        actions.task_submit(**kwargs)
    assert fragment in " ".join(error.value.messages)
    assert nothing_queued()


def test_a_dependency_cycle_in_a_batch_is_refused_and_nothing_is_queued(django_capture_on_commit_callbacks):
    items = [
        {"key": "a", "name": "system.noop", "depends_on": ["c"]},
        {"key": "b", "name": "system.noop", "depends_on": ["a"]},
        {"key": "c", "name": "system.noop", "depends_on": ["b"]},
    ]
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError) as error:
        actions.task_submit_batch(items=items)
    assert "cycle" in " ".join(error.value.messages)
    assert nothing_queued()


def test_an_invalid_item_refuses_the_whole_batch(django_capture_on_commit_callbacks):
    items = [{"key": "a", "name": "system.noop"}, {"key": "b", "name": "system.sleep", "args": {"seconds": -1}}]
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError):
        actions.task_submit_batch(items=items)
    assert nothing_queued()


def test_submit_records_the_run_and_enqueues_it_with_its_priority_after_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = actions.task_submit(name="system.noop", priority="critical", submitted_by="ops")
    assert QueueMessage.objects.count() == 0  # nothing reaches the broker before the commit
    for callback in callbacks:
        callback()
    message = QueueMessage.objects.get()
    assert (run.status, run.priority, message.priority) == (Status.QUEUED, Priority.CRITICAL, Priority.CRITICAL)
    assert run.submitted_by == "ops"


def test_a_delayed_submission_is_not_available_before_its_time(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        actions.task_submit(name="system.noop", countdown=120)
    message = QueueMessage.objects.get()
    assert message.available_at > timezone.now() + dt.timedelta(seconds=100)


def test_executing_a_run_records_success_result_and_one_attempt(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.whoami")
        outcome = execution.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert outcome == "succeeded"
    assert (run.status, run.attempts, run.progress, run.result["schema"]) == (Status.SUCCEEDED, 1, 1.0, "public")
    assert list(run.attempt_log.values_list("outcome", flat=True)) == ["succeeded"]
    # A second delivery of the same package does nothing.
    assert execution.run_execute(run_id=run.pk) == "not runnable"


def test_a_failure_is_retried_with_a_growing_capped_backoff(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.fail", max_retries=3, backoff_base=10, backoff_cap=25)
    delays = []
    for _ in range(4):
        with django_capture_on_commit_callbacks(execute=True):
            execution.run_execute(run_id=run.pk)
        run.refresh_from_db()
        if run.status == Status.RETRYING:
            delays.append(run.attempt_log.order_by("-number").first().retry_delay)
            TaskRun.objects.filter(pk=run.pk).update(next_attempt_at=None)
    assert run.status == Status.FAILED and run.attempts == 4
    assert "Failed on purpose" in run.error and "RuntimeError" in run.traceback
    nominal = [10, 20, 25]
    for delay, expected in zip(delays, nominal, strict=True):
        assert expected * (1 - run.backoff_jitter) <= delay <= expected
    # Each retry went back on the broker, not before its delay.
    assert QueueMessage.objects.filter(available_at__gt=timezone.now() + dt.timedelta(seconds=5)).count() == 3


def test_backoff_doubles_then_stops_at_the_cap():
    run = TaskRun(backoff_base=1, backoff_cap=10, backoff_jitter=0)
    assert [outcomes.backoff_delay(run=run, failed_attempt=n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_a_task_for_a_tenant_runs_in_its_schema_and_the_connection_returns_to_public(
        tenant_lakers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.whoami", tenant=tenant_lakers)
        execution.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.result["schema"] == "lakers"
    assert connection.schema_name == "public"


def test_a_run_whose_tenant_no_longer_exists_fails_loudly_and_never_runs_in_public(
        tenant_lakers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.whoami", tenant=tenant_lakers)
    TaskRun.objects.filter(pk=run.pk).update(schema_name="ghost", tenant=None)
    with pytest.raises(actions.TenantMissing, match="ghost"):
        execution.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == Status.FAILED and "ghost" in run.error and run.result is None


def test_submitting_in_a_tenant_context_takes_that_tenant(tenant_lakers):
    with schema_context("lakers"):
        assert actions.current_tenant().schema_name == "lakers"
    assert actions.current_tenant() is None


def test_cancelling_a_queued_run_means_it_never_starts(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.noop")
        actions.task_cancel(run=run, cancelled_by="ops")
        assert execution.run_execute(run_id=run.pk) == "not runnable"
    run.refresh_from_db()
    assert (run.status, run.attempts, run.started_at) == (Status.CANCELLED, 0, None)
    with pytest.raises(ValidationError, match="already cancelled"):
        actions.task_cancel(run=run)


def test_a_cancel_requested_while_running_stops_the_task_at_its_next_progress_report(
        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.sleep", arguments={"seconds": 0, "steps": 3})
    TaskRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    # Claimed while flagged: it is cancelled before starting.
    assert execution.run_execute(run_id=run.pk) == "cancelled"
    run.refresh_from_db()
    assert run.status == Status.CANCELLED


def test_progress_reports_are_stored_and_raise_once_cancelled(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.noop")
    actions.progress_report(run_id=run.pk, fraction=0.4, message="reading")
    run.refresh_from_db()
    assert (run.progress, run.progress_message) == (0.4, "reading")
    TaskRun.objects.filter(pk=run.pk).update(cancel_requested=True)
    with pytest.raises(actions.TaskCancelled):
        actions.progress_report(run_id=run.pk, fraction=0.5)
    with pytest.raises(ValueError):
        actions.progress_report(run_id=run.pk, fraction=1.5)


def test_dependents_wait_then_run_and_a_failed_dependency_cancels_them(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        runs = actions.task_submit_batch(items=[
            {"key": "a", "name": "system.noop"},
            {"key": "b", "name": "system.noop", "depends_on": ["a"]},
            {"key": "bad", "name": "system.fail"},
            {"key": "after_bad", "name": "system.noop", "depends_on": ["bad", "a"]},
            {"key": "chained", "name": "system.noop", "depends_on": ["after_bad"]},
            {"key": "anyway", "name": "system.noop", "depends_on": ["bad"], "run_if_dependency_fails": True},
        ])
    a, b, bad, after_bad, chained, anyway = runs
    assert [r.status for r in runs] == ["queued", "waiting", "queued", "waiting", "waiting", "waiting"]
    with django_capture_on_commit_callbacks(execute=True):
        execution.run_execute(run_id=a.pk)
    b.refresh_from_db()
    assert b.status == Status.QUEUED
    with django_capture_on_commit_callbacks(execute=True):
        execution.run_execute(run_id=bad.pk)
    for run in (after_bad, chained, anyway):
        run.refresh_from_db()
    assert (after_bad.status, chained.status, anyway.status) == (Status.CANCELLED, Status.CANCELLED, Status.QUEUED)


def test_depending_on_another_tenants_run_is_refused(tenant_lakers, tenant_warriors,
                                                     django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        theirs = actions.task_submit(name="system.noop", tenant=tenant_warriors)
        with pytest.raises(ValidationError, match="No such task run"):
            actions.task_submit(name="system.noop", tenant=tenant_lakers, depends_on=[theirs.pk])


def test_effects_keyed_by_the_run_happen_once_however_often_the_task_runs(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.tally")
    assert actions.effect_once(key=run.idempotency_key, run=run) is True
    assert actions.effect_once(key=run.idempotency_key, run=run) is False
    assert TaskEffect.objects.filter(key=run.idempotency_key).count() == 1


def test_a_lost_attempt_is_recorded_and_the_run_taken_over_after_its_lease(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.tally")
    # A worker claimed it and died: status running, its lease already expired.
    TaskRun.objects.filter(pk=run.pk).update(status=Status.RUNNING, attempts=1,
                                             lease_until=timezone.now() - dt.timedelta(seconds=1))
    TaskAttempt.objects.create(run=run, number=1, started_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert execution.run_execute(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    assert (run.status, run.attempts, run.lost_attempts) == (Status.SUCCEEDED, 2, 1)
    assert list(run.attempt_log.values_list("outcome", flat=True)) == ["lost", "succeeded"]


def test_a_duplicate_delivery_while_the_lease_is_held_is_deferred_not_run(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.noop")
    TaskRun.objects.filter(pk=run.pk).update(status=Status.RUNNING, attempts=1,
                                             lease_until=timezone.now() + dt.timedelta(seconds=30))
    with django_capture_on_commit_callbacks(execute=True):
        assert execution.run_execute(run_id=run.pk) == "deferred"
    run.refresh_from_db()
    assert run.attempts == 1
    assert QueueMessage.objects.filter(available_at__gt=timezone.now() + dt.timedelta(seconds=20)).exists()


def test_training_a_model_writes_only_to_the_submitting_tenants_schema(
        tenant_lakers, tenant_warriors, django_capture_on_commit_callbacks):
    from league.models import StatModel

    with schema_context("lakers"):
        make_stat_lines()
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="league.train_points_model", arguments={"name": "pts-v1"},
                                   tenant=tenant_lakers)
        execution.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.error
    with schema_context("lakers"):
        model = StatModel.objects.get(name="pts-v1")
        assert model.status == "ready" and model.metrics["samples"] > 0
    with schema_context("warriors"):
        assert not StatModel.objects.exists()


def test_season_averages_are_computed_from_the_tenants_own_lines(tenant_lakers, django_capture_on_commit_callbacks):
    with schema_context("lakers"):
        make_stat_lines(games=3)
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="league.recompute_season_averages", arguments={"season": "2025-26"},
                                   tenant=tenant_lakers)
        execution.run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.result["players"] == 4 and run.result["leaders"][0]["games"] == 3


def test_schedules_are_validated_mirrored_into_django_q_and_fire_for_their_tenant(
        tenant_lakers, django_capture_on_commit_callbacks):
    with pytest.raises(ValidationError, match="cron"):
        actions.schedule_save(name="bad", task_name="system.noop", cron="every day")
    with pytest.raises(ValidationError, match="Unknown task"):
        actions.schedule_save(name="bad", task_name="nope", cron="0 4 * * *")
    schedule = actions.schedule_save(name="nightly", task_name="league.recompute_season_averages",
                                      tenant=tenant_lakers, cron="0 4 * * *", priority=Priority.LOW)
    q = Schedule.objects.get(pk=schedule.q_schedule_id)
    assert (q.func, q.schedule_type, q.cron) == ("tasks.runner.fire_schedule", Schedule.CRON, "0 4 * * *")
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.schedule_fire(schedule_id=schedule.pk)
    assert (run.schema_name, run.priority, run.schedule_id) == ("lakers", Priority.LOW, schedule.pk)
    actions.schedule_save(schedule=schedule, name="nightly", task_name="system.noop", interval_minutes=15,
                           enabled=False)
    q.refresh_from_db()
    assert (q.schedule_type, q.minutes, q.repeats) == (Schedule.MINUTES, 15, 0)
    assert actions.schedule_fire(schedule_id=schedule.pk) is None  # disabled
    actions.schedule_delete(schedule=schedule)
    assert not Schedule.objects.filter(pk=q.pk).exists()


def _deliver(run_id, ack_id):
    """What a django-q2 worker does around one package: pre_execute, the call, post_execute_in_worker.

    django-q2's monitor then acknowledges the package if and only if `ack_id` is still in the task, and
    sends post_execute (_monitor below).
    """
    from django_q.signals import post_execute_in_worker, pre_execute

    from tasks import runner

    task = {"ack_id": ack_id, "func": "tasks.runner.execute", "args": (str(run_id),)}
    pre_execute.send(sender="django_q", func=runner.execute, task=task)
    try:
        outcome, task["success"] = runner.execute(str(run_id)), True
    except Exception as error:
        outcome, task["success"] = repr(error), False
    post_execute_in_worker.send(sender="django_q", func=runner.execute, task=task)
    return outcome, task


def _monitor(task):
    """What django-q2's monitor does with a worker's result package once it is not to be saved."""
    from django_q.signals import post_execute

    ack_id = task.pop("ack_id", False)
    if ack_id and (task["success"] or task.get("ack_failure", False)):
        get_task_broker().acknowledge(ack_id)
    post_execute.send(sender="django_q", task=task)


def test_the_monitor_records_a_success_and_acknowledges_its_package_and_a_failure_to_record_leaves_it(
        tenant_lakers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        done = actions.task_submit(name="system.noop")
    done_package = QueueMessage.objects.latest("id").pk
    with django_capture_on_commit_callbacks(execute=True):
        ghost = actions.task_submit(name="system.whoami", tenant=tenant_lakers)
    ghost_package = QueueMessage.objects.latest("id").pk

    outcome, task = _deliver(done.pk, done_package)
    # The worker wrote nothing after its claim: the success travels to the monitor in the result package,
    # as the package's acknowledgement, which the broker records it with.
    assert outcome == "succeeded" and isinstance(task["ack_id"], Acknowledgement)
    assert task["ack_id"] == done_package and task["ack_id"].success["run_id"] == str(done.pk)
    assert TaskRun.objects.get(pk=done.pk).status == Status.RUNNING
    assert QueueMessage.objects.filter(pk=done_package).exists()
    _monitor(task)
    run = TaskRun.objects.get(pk=done.pk)
    assert run.status == Status.SUCCEEDED and run.progress == 1 and run.finished_at >= run.started_at
    assert list(run.attempt_log.values_list("outcome", "worker_pid")) == [("succeeded", os.getpid())]
    assert not QueueMessage.objects.filter(pk=done_package).exists()

    TaskRun.objects.filter(pk=ghost.pk).update(schema_name="ghost", tenant=None)
    outcome, task = _deliver(ghost.pk, ghost_package)
    # Recorded as failed, but the package is not acknowledged (the monitor finds no ack_id): it comes back
    # after its lease and the run's row decides. The same holds when the database was unreachable.
    assert "TenantMissing" in outcome and "ack_id" not in task
    assert QueueMessage.objects.filter(pk=ghost_package).exists()
    assert TaskRun.objects.get(pk=ghost.pk).status == Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_a_submission_outside_a_transaction_stores_exactly_the_run_it_returns(tenant_lakers):
    # Outside a transaction the run row goes in with its package, values prepared by tasks.broker's own
    # INSERT (not the ORM's): every field read back must equal what task_submit handed the caller.
    run_at = timezone.now() + dt.timedelta(hours=1)
    submitted = actions.task_submit(
        name="league.recompute_season_averages", arguments={"season": "2025-26"}, tenant=tenant_lakers,
        priority="HIGH", run_at=run_at, max_retries=3, timeout=45, backoff_base=1.5, backoff_cap=60,
        submitted_by="coach@lakers", run_if_dependency_fails=True,
    )
    stored = TaskRun.objects.get(pk=submitted.pk)
    for field in TaskRun._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(submitted, field.attname), field.name
    assert stored.tenant_id == tenant_lakers.pk and stored.priority == Priority.HIGH and stored.run_at == run_at
    assert stored.arguments == {"season": "2025-26"} and stored.status == Status.QUEUED
    message = QueueMessage.objects.get()
    assert message.priority == Priority.HIGH and message.available_at == run_at


def _dequeue_all(broker):
    packages = []
    while batch := broker.dequeue():
        packages += batch
    return packages


# Transactional: the dequeue compares with now(), which inside a test's transaction is the time it began.
@pytest.mark.django_db(transaction=True)
def test_the_dequeue_claims_the_run_its_package_carries_and_the_worker_starts_it_without_a_claim_of_its_own(
        django_capture_on_commit_callbacks, settings):
    from django_q.tasks import async_task

    from tasks.engine.broker import ClaimedMessage, get_task_broker

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "poll": 0}
    broker = get_task_broker()
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.noop", priority="HIGH")
    async_task("math.fabs", -1.0, broker=broker, q_options={"ack_failure": True, "save": False})

    (ours, _payload), (plain, _plain_payload) = _dequeue_all(broker)
    assert isinstance(ours, ClaimedMessage) and ours.claim["values"]["id"] == str(run.pk)
    assert not isinstance(plain, ClaimedMessage)  # a plain package's id, nothing claimed
    claimed = TaskRun.objects.get(pk=run.pk)
    # Claimed, not started: it reads as queued until a worker starts its task (issue 13.6).
    assert claimed.status == Status.CLAIMED and claimed.attempts == 1 and claimed.lease_until > timezone.now()
    assert claimed.started_at is None
    assert claimed.worker_pid is None  # which worker takes the package is not known at the dequeue

    # Had the worker claimed again it would find the run running under a live lease and defer it.
    outcome, task = _deliver(run.pk, ours)
    assert outcome == "succeeded"
    _monitor(task)
    done = TaskRun.objects.get(pk=run.pk)
    assert done.status == Status.SUCCEEDED and done.attempts == 1 and done.worker_pid == os.getpid()
    assert list(done.attempt_log.values_list("number", "outcome")) == [(1, "succeeded")]
    assert list(QueueMessage.objects.values_list("pk", flat=True)) == [int(plain)]  # the plain one awaits its ack


@pytest.mark.django_db(transaction=True)
def test_a_claimed_package_that_waited_for_a_worker_renews_its_claim_and_honours_a_cancel_made_meanwhile(
        django_capture_on_commit_callbacks, settings):
    from tasks.engine.broker import get_task_broker

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "poll": 0}
    with django_capture_on_commit_callbacks(execute=True):
        waited = actions.task_submit(name="system.noop")
        cancelled = actions.task_submit(name="system.noop")
        taken_over = actions.task_submit(name="system.noop")
    packages = {ack.claim["values"]["id"]: ack for ack, _ in _dequeue_all(get_task_broker())}
    for ack in packages.values():
        ack.claim["delivered_at"] -= 60  # as if the package sat behind long tasks for a minute
    actions.task_cancel(run=TaskRun.objects.get(pk=cancelled.pk), cancelled_by="ops")
    TaskRun.objects.filter(pk=taken_over.pk).update(attempts=2)  # its lease ran out and another delivery took it

    before = timezone.now()
    assert _deliver(waited.pk, packages[str(waited.pk)])[0] == "succeeded"
    assert _deliver(cancelled.pk, packages[str(cancelled.pk)])[0] == "cancelled"
    assert _deliver(taken_over.pk, packages[str(taken_over.pk)])[0] == "superseded"

    renewed = TaskRun.objects.get(pk=waited.pk)
    assert renewed.worker_pid == os.getpid() and renewed.started_at >= before  # started when a worker took it
    never_started = TaskRun.objects.get(pk=cancelled.pk)
    assert never_started.status == Status.CANCELLED and never_started.attempts == 0
    assert not never_started.attempt_log.exists()
    # Left to the delivery that has it, which has not started it (issue 13.6: claimed, not running).
    assert TaskRun.objects.get(pk=taken_over.pk).status == Status.CLAIMED


@pytest.mark.django_db(transaction=True)
def test_two_packages_of_one_run_in_one_batch_carry_one_claim(django_capture_on_commit_callbacks, settings):
    from tasks.engine.broker import ClaimedMessage, get_task_broker

    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "poll": 0, "bulk": 5}
    with django_capture_on_commit_callbacks(execute=True):
        run = actions.task_submit(name="system.noop")
    broker.enqueue_run(run.pk, eta=None, priority=run.priority, timeout=run.timeout)  # a duplicate delivery
    packages = _dequeue_all(get_task_broker())
    assert len(packages) == 2 and sum(isinstance(ack, ClaimedMessage) for ack, _ in packages) == 1
    assert TaskRun.objects.get(pk=run.pk).attempts == 1


def test_only_the_run_of_the_package_being_executed_leaves_its_success_to_the_monitor(
        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        delivered = actions.task_submit(name="system.noop")
        other = actions.task_submit(name="system.noop")
    task = {"ack_id": None, "func": "tasks.runner.execute", "args": (str(delivered.pk),)}
    Delivery.begin(task=task)
    try:
        # Code inside a task that executes another run (none of ours does) records that run's success itself.
        assert execution.run_execute(run_id=other.pk) == "succeeded"
        assert TaskRun.objects.get(pk=other.pk).status == Status.SUCCEEDED
        assert execution.run_execute(run_id=delivered.pk) == "succeeded"
        assert TaskRun.objects.get(pk=delivered.pk).status == Status.RUNNING  # the monitor's to record
    finally:
        Delivery.end()
    pending = task["ack_id"].success
    assert pending["run_id"] == str(delivered.pk)
    outcomes.record_success(**pending)
    assert TaskRun.objects.get(pk=delivered.pk).status == Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_a_success_the_monitor_cannot_record_leaves_its_package_for_redelivery(caplog):
    run = actions.task_submit(name="system.noop")
    package = QueueMessage.objects.get()
    broken = {"run_id": "not-a-run-id", "attempt": 1, "worker_pid": 1, "started_at": timezone.now(),
              "finished_at": timezone.now(), "result": None}
    # The monitor process goes on: the error is logged, not raised.
    _monitor({"ack_id": Acknowledgement(package.pk, broken), "success": True})
    assert "Could not record the success" in caplog.text
    assert QueueMessage.objects.filter(pk=package.pk).exists()  # not acknowledged: it comes back after its lease
    assert TaskRun.objects.get(pk=run.pk).status == Status.QUEUED
