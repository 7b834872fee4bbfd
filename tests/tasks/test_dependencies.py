"""Long dependency chains: submitted, cancelled and recovered without recursion, capped per plan (issue 14.4)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.db.models import Count
from django.utils import timezone

from tasks import actions
from tasks.engine import execution, recovery
from tasks.models import QueueMessage, Status, TaskRun

# The ORM broker (packages are QueueMessage rows) whatever REDIS_URL says: tests.tasks.conftest.use_broker.
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("orm_broker")]

RUNS = "/api/v1/tasks/runs/"


def chain_items(length: int, *, name: str = "system.noop") -> list[dict]:
    """A chain k0 <- k1 <- ... (each waits for the one before), listed last first."""
    items = [{"key": f"k{i}", "name": name, "depends_on": [f"k{i - 1}"] if i else []} for i in range(length)]
    return items[::-1]


def submit_chain(length: int, capture) -> list[TaskRun]:
    with capture(execute=True):
        runs = actions.task_submit_batch(items=chain_items(length))
    return runs[::-1]  # k0 first


def test_a_1200_deep_chain_listed_in_reverse_is_accepted_in_order(operator_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{RUNS}batch/", {"tasks": chain_items(1200)}, content_type="application/json")
    assert response.status_code == 201, response.content[:500]
    runs = response.json()
    assert len(runs) == 1200
    by_key = {f"k{1199 - index}": run for index, run in enumerate(runs)}  # the answer keeps the request's order
    assert by_key["k0"]["status"] == "queued" and by_key["k0"]["depends_on"] == []
    assert all(by_key[f"k{i}"]["status"] == "waiting" and by_key[f"k{i}"]["depends_on"] == [by_key[f"k{i - 1}"]["id"]]
               for i in range(1, 1200))
    assert QueueMessage.objects.count() == 1


def test_cancelling_the_root_of_a_700_run_chain_cancels_every_run_of_it(operator_client,
                                                                         django_capture_on_commit_callbacks):
    runs = submit_chain(700, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{RUNS}{runs[0].pk}/cancel/")
    assert response.status_code == 200, response.content[:500]
    statuses = dict(TaskRun.objects.values_list("status").annotate(n=Count("pk")))
    assert statuses == {Status.CANCELLED: 700}
    assert TaskRun.objects.filter(status=Status.CANCELLED, error="A dependency failed or was cancelled.").count() == 699


def test_task_cancel_on_the_root_of_a_1500_run_chain_cancels_it_all(django_capture_on_commit_callbacks):
    runs = submit_chain(1500, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("task_cancel", str(runs[0].pk))
    assert not TaskRun.objects.exclude(status=Status.CANCELLED).exists()


def test_a_failed_run_cancels_its_waiting_chain_but_not_a_run_told_to_go_on(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        bad, child, anyway, after_anyway, grandchild = actions.task_submit_batch(items=[
            {"key": "bad", "name": "system.fail"},
            {"key": "child", "name": "system.noop", "depends_on": ["bad"]},
            {"key": "anyway", "name": "system.noop", "depends_on": ["child"], "run_if_dependency_fails": True},
            {"key": "after_anyway", "name": "system.noop", "depends_on": ["anyway"]},
            {"key": "grandchild", "name": "system.noop", "depends_on": ["child"]},
        ])
        execution.run_execute(run_id=bad.pk)
    statuses = {key: TaskRun.objects.get(pk=run.pk).status for key, run in
                {"child": child, "anyway": anyway, "after_anyway": after_anyway, "grandchild": grandchild}.items()}
    assert statuses == {"child": Status.CANCELLED, "grandchild": Status.CANCELLED, "anyway": Status.QUEUED,
                        "after_anyway": Status.WAITING}
    assert QueueMessage.objects.filter(run_id=anyway.pk).count() == 1


def test_waiting_runs_whose_dependencies_ended_are_recovered(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        done, after_done, failed, after_failed = actions.task_submit_batch(items=[
            {"key": "done", "name": "system.noop"},
            {"key": "after_done", "name": "system.noop", "depends_on": ["done"]},
            {"key": "failed", "name": "system.noop"},
            {"key": "after_failed", "name": "system.noop", "depends_on": ["failed"]},
        ])
    # What a process that died between a run's outcome and the release of its dependents leaves behind.
    long_ago = timezone.now() - dt.timedelta(minutes=5)
    TaskRun.objects.filter(pk=done.pk).update(status=Status.SUCCEEDED, finished_at=long_ago)
    TaskRun.objects.filter(pk=failed.pk).update(status=Status.FAILED, finished_at=long_ago)
    QueueMessage.objects.all().delete()
    with django_capture_on_commit_callbacks(execute=True):
        recovered = recovery.recover_stalled_runs()
    assert recovered["waiting"] == 2
    assert TaskRun.objects.get(pk=after_done.pk).status == Status.QUEUED
    assert TaskRun.objects.get(pk=after_failed.pk).status == Status.CANCELLED
    assert list(QueueMessage.objects.values_list("run_id", flat=True)) == [after_done.pk]


def test_a_tenants_batch_and_chain_are_capped_by_its_plan(lakers_client, tenant_lakers,
                                                          django_capture_on_commit_callbacks):
    plan = tenant_lakers.plan
    plan.max_task_batch_size, plan.max_task_chain_length = 10, 4
    plan.save()
    too_many = [{"key": f"k{i}", "name": "system.noop"} for i in range(11)]
    with django_capture_on_commit_callbacks(execute=True):
        big = lakers_client.post(f"{RUNS}batch/", {"tasks": too_many}, content_type="application/json")
        deep = lakers_client.post(f"{RUNS}batch/", {"tasks": chain_items(5)}, content_type="application/json")
        fits = lakers_client.post(f"{RUNS}batch/", {"tasks": chain_items(4)}, content_type="application/json")
    for response, fragment in ((big, "at most 10"), (deep, "at most 4")):
        assert response.status_code == 400, response.content
        error = response.json()["error"]
        assert set(error) == {"code", "message", "detail", "request_id"}
        assert fragment in error["message"] + str(error["detail"])
    assert fits.status_code == 201
    last = fits.json()[0]["id"]  # k3, at the end of a chain of 4
    # One more link, submitted on its own, would make a chain of 5.
    with django_capture_on_commit_callbacks(execute=True):
        longer = lakers_client.post(RUNS, {"name": "system.noop", "depends_on": [last]},
                                    content_type="application/json")
    assert longer.status_code == 400 and "at most 4" in str(longer.json()["error"])
    assert TaskRun.objects.count() == 4


def test_the_plans_api_and_admin_show_the_task_limits(operator_client):
    body = operator_client.get("/api/v1/plans/").json()
    plans = {p["code"]: p for p in (body["results"] if isinstance(body, dict) else body)}
    assert plans["FREE"]["max_task_priority"] == "NORMAL" and plans["ENTERPRISE"]["max_task_priority"] == "HIGH"
    assert plans["FREE"]["max_task_batch_size"] < plans["PROFESSIONAL"]["max_task_batch_size"]
    assert plans["FREE"]["max_task_chain_length"] < plans["ENTERPRISE"]["max_task_chain_length"]
    assert plans["FREE"]["max_active_task_runs"] < plans["ENTERPRISE"]["max_active_task_runs"]
    body = operator_client.get("/admin/tenants/plan/").content.decode().lower()
    for column in ("task batch", "task chain", "unfinished task runs", "task priority"):
        assert column in body


def test_the_plans_priority_choices_are_the_task_priorities():
    from tasks.models import Priority
    from tenants.models import TASK_PRIORITY_CHOICES

    assert TASK_PRIORITY_CHOICES == [(priority.value, priority.label) for priority in Priority]


def test_the_operators_own_bound_is_configurable(operator_client, django_capture_on_commit_callbacks):
    from configuration import config

    config.set("tasks.operator_limits.max_batch_size", 3, changed_by="test")
    four = [{"key": f"k{i}", "name": "system.noop"} for i in range(4)]
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{RUNS}batch/", {"tasks": four}, content_type="application/json")
    assert response.status_code == 400 and "at most 3" in response.json()["error"]["message"] + str(
        response.json()["error"]["detail"])
    assert not TaskRun.objects.exists()


def test_the_plan_admin_edits_the_task_limits_and_refuses_a_blank_one(operator_client):
    from tenants.models import Plan

    free = Plan.objects.get(code="FREE")
    form = {"code": "FREE", "name": "Free", "api_calls_per_day": "100", "storage_bytes": str(free.storage_bytes),
            "max_users": "1", "max_models": "1", "max_concurrent_requests": "2", "monthly_price_cents": "0",
            "max_task_priority": "1", "max_task_batch_size": "30", "max_task_chain_length": "6",
            "max_active_task_runs": ""}
    assert operator_client.post(f"/admin/tenants/plan/{free.pk}/change/", form).status_code == 302
    free.refresh_from_db()
    assert (free.max_task_batch_size, free.max_task_chain_length, free.max_active_task_runs) == (30, 6, None)
    blank = operator_client.post(f"/admin/tenants/plan/{free.pk}/change/", {**form, "max_task_batch_size": ""})
    assert blank.status_code == 200 and "Give a value." in blank.content.decode()
    free.refresh_from_db()
    assert free.max_task_batch_size == 30
