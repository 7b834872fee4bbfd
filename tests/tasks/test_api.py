"""The task API over real HTTP requests (Django test client): operator site and tenant sites."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from tasks.models import QueueMessage, Status, TaskRun

pytestmark = pytest.mark.django_db

RUNS = "/api/v1/tasks/runs/"


def assert_error(response, status=400):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body["error"]) == {"code", "message", "detail", "request_id"}
    return body["error"]


def nothing_queued():
    return TaskRun.objects.count() == 0 and QueueMessage.objects.count() == 0


def test_the_operator_submits_reads_lists_and_cancels_a_run(operator_client, tenant_lakers,
                                                           django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(RUNS, {"name": "system.sleep", "args": {"seconds": 5}, "priority": "HIGH",
                                               "countdown": 30}, content_type="application/json")
    assert response.status_code == 201, response.content
    run = response.json()
    assert (run["name"], run["priority"], run["status"], run["tenant"]) == ("system.sleep", "HIGH", "queued",
                                                                           "public")
    assert QueueMessage.objects.get().priority == 2
    detail = operator_client.get(f"{RUNS}{run['id']}/").json()
    assert detail["progress"] == 0 and detail["attempts_log"] == []
    listed = operator_client.get(RUNS, {"status": "queued", "priority": "HIGH"}).json()
    assert [r["id"] for r in listed["results"]] == [run["id"]]
    cancelled = operator_client.post(f"{RUNS}{run['id']}/cancel/").json()
    assert cancelled["status"] == "cancelled"
    again = operator_client.post(f"{RUNS}{run['id']}/cancel/")
    assert "already cancelled" in assert_error(again)["message"]


def test_the_operator_may_submit_for_a_tenant(operator_client, tenant_lakers, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(RUNS, {"name": "league.recompute_season_averages", "tenant": "lakers"},
                                        content_type="application/json")
    assert response.status_code == 201
    assert TaskRun.objects.get().schema_name == "lakers"


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"name": "no.such.task"}, "Unknown task"),
        ({"name": "system.sleep", "args": {"seconds": "x"}}, "seconds"),
        ({"name": "system.sleep", "args": [1, 2]}, "JSON object"),
        ({"name": "system.noop", "countdown": -1}, "negative"),
        ({"name": "system.noop", "run_at": "2001-01-01T00:00:00Z"}, "past"),
        ({"name": "system.noop", "priority": "SOON"}, "priority"),
        ({"name": "system.noop", "tenant": "nobody"}, "No tenant"),
        ({"name": "system.noop", "depends_on": ["not-a-uuid"]}, "depends_on"),
    ],
)
def test_bad_submissions_answer_400_with_the_error_shape_and_queue_nothing(
        operator_client, payload, fragment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(RUNS, payload, content_type="application/json")
    error = assert_error(response)
    assert fragment.lower() in (error["message"] + str(error["detail"])).lower()
    assert nothing_queued()


def test_a_batch_with_a_cycle_answers_400_and_queues_nothing(operator_client, django_capture_on_commit_callbacks):
    tasks = [{"key": "a", "name": "system.noop", "depends_on": ["b"]},
             {"key": "b", "name": "system.noop", "depends_on": ["a"]}]
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{RUNS}batch/", {"tasks": tasks}, content_type="application/json")
    assert "cycle" in assert_error(response)["message"].lower()
    assert nothing_queued()


def test_a_batch_queues_roots_and_holds_dependents(operator_client, django_capture_on_commit_callbacks):
    tasks = [{"key": "a", "name": "system.noop"}, {"key": "b", "name": "system.noop", "depends_on": ["a"]}]
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{RUNS}batch/", {"tasks": tasks}, content_type="application/json")
    assert response.status_code == 201
    a, b = response.json()
    assert (a["status"], b["status"], b["depends_on"]) == ("queued", "waiting", [a["id"]])
    assert QueueMessage.objects.count() == 1


def test_a_tenant_submits_for_itself_and_sees_only_its_own_runs(
        lakers_client, warriors_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        mine = lakers_client.post(RUNS, {"name": "league.recompute_season_averages"},
                                  content_type="application/json")
        theirs = warriors_client.post(RUNS, {"name": "system.noop"}, content_type="application/json")
    assert mine.status_code == theirs.status_code == 201
    mine, theirs = mine.json(), theirs.json()
    assert (mine["tenant"], theirs["tenant"]) == ("lakers", "warriors")
    assert [r["id"] for r in lakers_client.get(RUNS).json()["results"]] == [mine["id"]]
    # Another tenant's run is not there at all: no read, no cancel.
    assert_error(lakers_client.get(f"{RUNS}{theirs['id']}/"), status=404)
    assert_error(lakers_client.post(f"{RUNS}{theirs['id']}/cancel/"), status=404)
    assert TaskRun.objects.get(pk=theirs["id"]).status == Status.QUEUED
    assert lakers_client.get("/api/v1/tasks/queue/").json()["queued_by_priority"]["Normal"] == 1


def test_a_tenant_cannot_submit_operator_work_or_wait_on_another_tenants_run(
        lakers_client, warriors_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        theirs = warriors_client.post(RUNS, {"name": "system.noop"}, content_type="application/json").json()
        refused = lakers_client.post(RUNS, {"name": "system.fire_schedules", "args": {"schedule_id": 1}},
                                     content_type="application/json")
        waiting = lakers_client.post(RUNS, {"name": "system.noop", "depends_on": [theirs["id"]]},
                                     content_type="application/json")
    assert "Unknown task" in assert_error(refused)["message"]
    assert "No such task run" in assert_error(waiting)["message"]
    assert TaskRun.objects.count() == 1


def test_the_tenant_catalogue_lists_no_operator_task(lakers_client, operator_client):
    tenant_names = {t["name"] for t in lakers_client.get("/api/v1/tasks/catalogue/").json()["tasks"]}
    operator_names = {t["name"] for t in operator_client.get("/api/v1/tasks/catalogue/").json()["tasks"]}
    assert "league.train_points_model" in tenant_names and "system.fire_schedules" not in tenant_names
    assert "system.fire_schedules" in operator_names


def test_the_api_refuses_anonymous_callers_and_tenant_users_on_the_operator_site(tenant_client_factory, public_tenant):
    anonymous = tenant_client_factory("lakers", logged_in=False)
    assert anonymous.get(RUNS).status_code in (401, 403)
    with schema_context("public"):
        pass
    from tests.conftest import PUBLIC_HOST, TenantClient

    assert TenantClient(PUBLIC_HOST).get(RUNS).status_code in (401, 403)


@pytest.mark.parametrize("bad_index", [0, 1])
def test_a_batch_with_one_invalid_item_answers_400_naming_that_item(operator_client, bad_index):
    # DRF reports a many=True serializer's errors keyed by item index; a bad second item once answered 500.
    tasks = [{"key": "a", "name": "system.noop"}, {"key": "b", "name": "system.noop"}]
    tasks[bad_index]["priority"] = [1]
    response = operator_client.post(f"{RUNS}batch/", {"tasks": tasks}, content_type="application/json")
    error = assert_error(response)
    assert f"tasks[{bad_index}]" in error["detail"] and "priority" in " ".join(error["detail"][f"tasks[{bad_index}]"])
    assert nothing_queued()
