"""The task runs' retention (tasks/pruning.py, the system job tasks.prune_runs) on real rows.

Old finished runs of every tenant and of the operator go, with their attempts; unfinished runs stay
whatever their age, and so do recent runs and a finished run an unfinished one depends on. Batches are
bounded and each commits on its own, so another connection is never kept waiting on the whole prune.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from tasks import actions, pruning, registry, runner
from tasks.engine import execution
from tasks.models import TERMINAL, Status, TaskAttempt, TaskEffect, TaskRun, TaskSchedule, TenantRunCount
from tests.conftest import connection_params

NOW = timezone.now()


def make_runs(count: int, *, status: str, age_days: float, tenant=None, attempts: int = 0) -> list[TaskRun]:
    """`count` runs of a tenant (or the operator's) in `status`, submitted and (if finished) finished
    `age_days` ago, each with `attempts` attempts."""
    when = NOW - dt.timedelta(days=age_days)
    runs = TaskRun.objects.bulk_create([
        TaskRun(name="system.noop", tenant=tenant, schema_name=tenant.schema_name if tenant else "public",
                status=status) for _ in range(count)])
    ids = [run.pk for run in runs]
    TaskRun.objects.filter(pk__in=ids).update(
        created_at=when - dt.timedelta(minutes=5), updated_at=when,
        finished_at=when if status in TERMINAL else None, attempts=attempts)
    TaskAttempt.objects.bulk_create([
        TaskAttempt(run_id=run_id, number=number, outcome=TaskAttempt.Outcome.SUCCEEDED, started_at=when,
                    finished_at=when) for run_id in ids for number in range(1, attempts + 1)])
    return list(TaskRun.objects.filter(pk__in=ids))


def ids(runs) -> set:
    return {run.pk for run in runs}


def existing(runs) -> set:
    return set(TaskRun.objects.filter(pk__in=ids(runs)).values_list("pk", flat=True))


def run_counts() -> dict:
    return {(c.tenant_id, c.side): c.runs for c in TenantRunCount.objects.all()}


@pytest.mark.django_db
def test_old_finished_runs_of_every_tenant_go_unfinished_and_recent_ones_stay(two_tenants):
    lakers, warriors = two_tenants
    old_finished = {
        owner: [*make_runs(3, status=Status.SUCCEEDED, age_days=45, tenant=tenant, attempts=2),
                *make_runs(1, status=Status.FAILED, age_days=400, tenant=tenant, attempts=3),
                *make_runs(1, status=Status.CANCELLED, age_days=31, tenant=tenant)]
        for owner, tenant in (("lakers", lakers), ("warriors", warriors), ("operator", None))
    }
    # Unfinished runs stay whatever their age (a queued run from last year is a stuck run to look at, not junk).
    old_live = [*make_runs(1, status=Status.QUEUED, age_days=400, tenant=lakers),
                *make_runs(1, status=Status.RUNNING, age_days=90, tenant=lakers, attempts=1),
                *make_runs(1, status=Status.RETRYING, age_days=60, tenant=warriors, attempts=1),
                *make_runs(1, status=Status.WAITING, age_days=50),
                *make_runs(1, status=Status.CLAIMED, age_days=40)]
    recent = [*make_runs(2, status=Status.SUCCEEDED, age_days=29, tenant=lakers, attempts=1),
              *make_runs(2, status=Status.FAILED, age_days=1, tenant=warriors),
              *make_runs(1, status=Status.SUCCEEDED, age_days=0.1)]
    # A finished dependency of an unfinished run stays (its outcome decides whether that run goes ahead).
    dependency, = make_runs(1, status=Status.SUCCEEDED, age_days=100, tenant=warriors)
    waiting, = make_runs(1, status=Status.WAITING, age_days=100, tenant=warriors)
    waiting.depends_on.add(dependency)
    # A recent retry of an old run stays, detached from it; the old run's ledger row under its own key goes,
    # a key a task chose itself stays (it must keep meaning "at most once").
    retried = old_finished["lakers"][0]
    retry, = make_runs(1, status=Status.SUCCEEDED, age_days=2, tenant=lakers)
    TaskRun.objects.filter(pk=retry.pk).update(retry_of=retried)
    TaskEffect.objects.create(key=retried.idempotency_key, run=retried)
    TaskEffect.objects.create(key="invoice:lakers:2026-10", run=retried)
    counts_before = run_counts()

    result = pruning.taskrun_prune()

    everything_old = [run for runs in old_finished.values() for run in runs]
    assert existing(everything_old) == set()
    assert not TaskAttempt.objects.filter(run_id__in=ids(everything_old)).exists()
    assert existing([*old_live, *recent, dependency, waiting, retry]) == ids([*old_live, *recent, dependency,
                                                                             waiting, retry])
    assert TaskAttempt.objects.filter(run_id__in=ids(recent)).count() == 2  # theirs untouched
    assert TaskRun.objects.get(pk=retry.pk).retry_of_id is None
    assert list(waiting.depends_on.all()) == [dependency]
    assert not TaskEffect.objects.filter(key=retried.idempotency_key).exists()
    assert TaskEffect.objects.get(key="invoice:lakers:2026-10").run_id is None
    # The tenants' unfinished-run counts (the plan's cap on active runs) are what they were.
    assert run_counts() == counts_before
    assert result | {"cutoff": None} == {
        "cutoff": None, "days": 30, "batch_size": 5000, "candidates": 15, "runs": 15, "attempts": 27,
        "effects_deleted": 1, "effects_detached": 1, "batches": 1, "largest_batch": 15, "operator_runs": 5,
        "tenants": 2, "complete": True, "unfinished_kept": 6}

    # Nothing left to prune: a second prune deletes nothing.
    assert pruning.taskrun_prune()["runs"] == 0


@pytest.mark.django_db
def test_the_retention_follows_its_setting_and_bad_values_are_refused(tenant_lakers):
    twenty_days, = make_runs(1, status=Status.SUCCEEDED, age_days=20, tenant=tenant_lakers)
    assert pruning.taskrun_prune()["runs"] == 0  # the default, 30 days
    with override_settings(TASKRUN_RETENTION_DAYS=10):
        assert pruning.taskrun_prune()["runs"] == 1
    assert not existing([twenty_days])
    for bad in ({"days": 0}, {"days": -5}, {"days": "30"}, {"batch_size": 0}, {"batch_size": 10**9}):
        with pytest.raises(ValueError):
            pruning.taskrun_prune(**bad)
    spec = registry.get_spec("tasks.prune_runs")
    for bad in ({"days": 0}, {"batch_size": 100_000}, {"days": 1.5}, {"tenant": "lakers"}):
        with pytest.raises(ValidationError):
            spec.validate(bad)


@pytest.mark.django_db(transaction=True)
def test_batches_are_bounded_and_each_commits_on_its_own(tenant_lakers):
    old = [*make_runs(120, status=Status.SUCCEEDED, age_days=40, tenant=tenant_lakers, attempts=1),
           *make_runs(30, status=Status.FAILED, age_days=40)]
    seen_by_another_connection = []
    with psycopg.connect(autocommit=True, **connection_params()) as other:

        def progress(fraction, message):
            # Between batches, another connection sees what is pruned so far (committed), and can lock a run
            # still waiting for its batch at once: no transaction spans the prune.
            left = other.execute("SELECT count(*) FROM tasks_taskrun WHERE id = ANY(%s)",
                                 [list(ids(old))]).fetchone()[0]
            other.execute("BEGIN")
            locked = other.execute("SELECT count(*) FROM (SELECT 1 FROM tasks_taskrun WHERE id = ANY(%s) "
                                   "FOR UPDATE NOWAIT) t", [list(ids(old))]).fetchone()[0]
            other.execute("ROLLBACK")
            seen_by_another_connection.append((round(fraction, 3), left, locked, message))

        result = pruning.taskrun_prune(batch_size=50, progress=progress)

    assert (result["runs"], result["attempts"], result["batches"], result["largest_batch"]) == (150, 120, 3, 50)
    assert seen_by_another_connection == [
        (0.333, 100, 100, "50 of 150 finished runs pruned"),
        (0.667, 50, 50, "100 of 150 finished runs pruned"),
        (1.0, 0, 0, "150 of 150 finished runs pruned"),
    ]
    assert not existing(old)


@pytest.mark.django_db(transaction=True)
def test_a_run_locked_elsewhere_is_left_for_the_next_prune_not_waited_on(tenant_lakers):
    old = make_runs(3, status=Status.SUCCEEDED, age_days=40, tenant=tenant_lakers)
    busy = old[0]
    with psycopg.connect(**connection_params()) as other:  # a transaction holding one run's row
        other.execute("SELECT 1 FROM tasks_taskrun WHERE id = %s FOR UPDATE", [busy.pk])
        result = pruning.taskrun_prune()
        other.rollback()
    assert result["runs"] == 2 and existing(old) == {busy.pk}
    assert pruning.taskrun_prune()["runs"] == 1


@pytest.mark.django_db
def test_the_prune_is_a_daily_system_job_that_reports_its_progress(tenant_lakers):
    old = make_runs(7, status=Status.SUCCEEDED, age_days=60, tenant=tenant_lakers)
    actions.system_schedules_reconcile()
    schedule = TaskSchedule.objects.get(name="tasks: prune finished runs")
    assert (schedule.system, schedule.task_name, schedule.cron, schedule.tenant_id) == (
        True, "tasks.prune_runs", "45 3 * * *", None)
    assert registry.get_spec("tasks.prune_runs").scope == registry.OPERATOR  # a tenant can never submit it
    run = TaskRun.objects.get(pk=runner.fire_schedule(schedule.pk))
    assert execution.run_execute(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    assert (run.result["runs"], run.result["tenants"], run.result["complete"]) == (7, 1, True)
    assert (run.progress, run.progress_message) == (1.0, "7 of 7 finished runs pruned")
    assert not existing(old)
