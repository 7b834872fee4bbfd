"""Every number and size a submitter sends is bounded in the service: API, batch and commands refuse alike (14.5)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from tasks import actions
from tasks.models import QueueMessage, TaskRun

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/tasks/runs/"


def nothing_queued():
    return TaskRun.objects.count() == 0 and QueueMessage.objects.count() == 0


def assert_error(response, status=400):
    assert response.status_code == status, response.content[:500]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "detail", "request_id"}
    return (error["message"] + " " + json.dumps(error["detail"])).lower()


A_YEAR_AND_A_DAY = (dt.timedelta(days=366)).total_seconds()


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"name": "system.noop", "countdown": 1e12}, "countdown"),
        ({"name": "system.noop", "countdown": 2**63}, "countdown"),
        ({"name": "system.noop", "countdown": 1e308}, "countdown"),
        ({"name": "system.noop", "countdown": A_YEAR_AND_A_DAY}, "365 days"),
        ({"name": "system.noop", "run_at": "9999-12-31T23:59:59Z"}, "365 days"),
        ({"name": "system.noop", "depends_on": ["00000000-0000-0000-0000-000000000000"] * 201}, "at most 200"),
        ({"name": "schemas.rollout", "args": {"schemas": ["s" * 60] * 1200}}, "bytes"),
        ({"name": "system.noop", "max_retries": 10**30}, "max_retries"),
        ({"name": "system.noop", "backoff_base": 1e300}, "backoff_base"),
    ],
)
def test_out_of_bounds_submissions_answer_400_and_queue_nothing(operator_client, payload, fragment,
                                                                 django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(RUNS, payload, content_type="application/json")
    assert fragment in assert_error(response)
    assert nothing_queued()


def test_a_batch_item_out_of_bounds_refuses_the_batch(operator_client, django_capture_on_commit_callbacks):
    tasks = [{"key": "a", "name": "system.noop"}, {"key": "b", "name": "system.noop", "countdown": 1e12}]
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{RUNS}batch/", {"tasks": tasks}, content_type="application/json")
    assert "countdown" in assert_error(response)
    assert nothing_queued()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"countdown": 1e12}, {"countdown": float("inf")}, {"countdown": float("nan")}, {"countdown": "10"},
        {"countdown": True}, {"run_at": timezone.now() + dt.timedelta(days=400)}, {"timeout": True},
        {"max_retries": True},
    ],
)
def test_the_service_refuses_what_no_surface_should_let_through(kwargs, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError):
        actions.task_submit(name="system.noop", **kwargs)
    assert nothing_queued()


def test_arguments_nested_too_deep_are_refused_before_validation(django_capture_on_commit_callbacks):
    deep = current = {}
    for _ in range(5000):
        current["x"] = {}
        current = current["x"]
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError, match="nested"):
        actions.task_submit(name="schemas.rollout", arguments=deep)
    assert nothing_queued()


@pytest.mark.parametrize(
    "args",
    [
        ["system.noop", "--countdown", "1e309"],
        ["system.noop", "--countdown", "nan"],
        ["system.noop", "--countdown", "1e12"],
        ["system.noop", "--run-at", "2026-13-45T99:00"],
        ["system.noop", "--run-at", "2026-12-31T10:00"],  # no time zone
        ["system.noop", "--run-at", "9999-12-31T23:59:59+00:00"],
        ["system.noop", "--timeout", str(10**30)],
        ["schemas.rollout", "--args", '{"schemas": ' * 5000 + "[]" + "}" * 5000],
    ],
)
def test_task_submit_refuses_out_of_bounds_input_with_a_command_error(args):
    with pytest.raises(CommandError):
        call_command("task_submit", *args)
    assert nothing_queued()


# ---------------------------------------------------------------- issue 14.11: task names a tenant may see

OPERATOR_ONLY = ("system.fire_schedules", "schemas.rollout")


@pytest.mark.parametrize("name", ["no.such.task", "system.fire_schedules"])
def test_a_tenant_sending_an_unknown_or_operator_task_name_is_shown_only_names_it_may_submit(
        lakers_client, name, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        single = lakers_client.post(RUNS, {"name": name}, content_type="application/json")
        batch = lakers_client.post(f"{RUNS}batch/", {"tasks": [{"key": "a", "name": name}]},
                                   content_type="application/json")
    for response in (single, batch):
        text = assert_error(response)
        assert "unknown task" in text and "league.train_points_model" in text
        # Its own input may be echoed; no other operator task's name is.
        assert not any(hidden in text for hidden in OPERATOR_ONLY if hidden != name), text
    assert nothing_queued()


def test_the_service_names_only_the_tasks_the_tenant_may_submit(tenant_lakers):
    with pytest.raises(ValidationError) as refused:
        actions.task_submit(name="no.such.task", tenant=tenant_lakers)
    text = " ".join(refused.value.messages)
    assert "league.train_points_model" in text and not any(hidden in text for hidden in OPERATOR_ONLY)
    with pytest.raises(ValidationError) as operator_sees:
        actions.task_submit(name="no.such.task")
    assert all(name in " ".join(operator_sees.value.messages) for name in OPERATOR_ONLY)
