"""The admin's task submit form: an allow-listed task, its arguments judged by the task's JSON Schema (form
errors, nothing queued), a priority; the operator submits for any tenant, a tenant admin for its own only."""

from __future__ import annotations

import pytest

from tasks.models import Priority, TaskRun
from tests.console.conftest import put_on_plan

pytestmark = pytest.mark.django_db

URL = "/admin/tasks/taskrun/submit/"


def test_the_operator_submits_a_task_for_a_tenant_and_bad_arguments_are_form_errors(operator_client, tenant_lakers):
    page = operator_client.get(URL).content.decode()
    assert 'name="tenant"' in page and "schemas.rollout" in page and "system.sleep" in page
    assert 'id="task-submit-link"' in operator_client.get("/admin/tasks/taskrun/").content.decode()

    bad = operator_client.post(URL, {"name": "system.sleep", "args": '{"seconds": 5000}', "tenant": "lakers",
                                     "priority": "1"})
    assert bad.status_code == 200
    assert "5000 is greater than the maximum of 3600" in bad.content.decode() and b"errorlist" in bad.content
    broken = operator_client.post(URL, {"name": "system.sleep", "args": '{"seconds": ', "tenant": "lakers"})
    assert broken.status_code == 200 and b"Enter a valid JSON" in broken.content
    unknown = operator_client.post(URL, {"name": "system.sleep", "args": '{"sekonds": 1}', "tenant": "lakers"})
    assert unknown.status_code == 200 and "sekonds" in unknown.content.decode()
    assert not TaskRun.objects.exists()

    good = operator_client.post(URL, {"name": "system.sleep", "args": '{"seconds": 0.1, "steps": 1}',
                                      "tenant": "lakers", "priority": str(Priority.CRITICAL.value)})
    assert good.status_code == 302, good.content.decode()[:3000]
    run = TaskRun.objects.get()
    assert (run.name, run.tenant_id, run.schema_name, run.priority, run.arguments) == (
        "system.sleep", tenant_lakers.pk, "lakers", Priority.CRITICAL, {"seconds": 0.1, "steps": 1})
    assert good["Location"].endswith(f"/admin/tasks/taskrun/{run.pk}/change/")
    assert run.submitted_by == "operator"


def test_a_tenant_admin_submits_only_for_its_own_tenant_within_its_plan(lakers_client, tenant_lakers,
                                                                        tenant_warriors):
    put_on_plan(tenant_lakers, "STARTER")  # tasks up to High priority
    page = lakers_client.get(URL).content.decode()
    assert 'name="tenant"' not in page and "schemas.rollout" not in page and "system.noop" in page

    # A tenant field smuggled into the POST is ignored: the run is the Lakers'.
    good = lakers_client.post(URL, {"name": "system.noop", "args": "{}", "tenant": "warriors", "priority": "1"})
    assert good.status_code == 302, good.content.decode()[:3000]
    run = TaskRun.objects.get()
    assert (run.tenant_id, run.schema_name) == (tenant_lakers.pk, "lakers")
    assert not TaskRun.objects.filter(tenant=tenant_warriors).exists()

    operator_task = lakers_client.post(URL, {"name": "schemas.rollout", "args": "{}"})
    assert operator_task.status_code == 200 and b"errorlist" in operator_task.content
    too_urgent = lakers_client.post(URL, {"name": "system.noop", "args": "{}",
                                          "priority": str(Priority.CRITICAL.value)})
    assert too_urgent.status_code == 200 and "allows task priorities up to HIGH" in too_urgent.content.decode()
    bad = lakers_client.post(URL, {"name": "system.fail", "args": '{"message": 7}'})
    assert bad.status_code == 200 and "7 is not of type &#x27;string&#x27;" in bad.content.decode()
    assert TaskRun.objects.count() == 1


def test_a_tenant_admin_cannot_open_another_tenants_runs_from_the_form(lakers_client, warriors_client,
                                                                      tenant_lakers, tenant_warriors):
    put_on_plan(tenant_warriors, "STARTER")
    response = warriors_client.post(URL, {"name": "system.noop", "args": "{}"})
    assert response.status_code == 302
    run = TaskRun.objects.get()
    assert run.tenant_id == tenant_warriors.pk
    assert lakers_client.get(f"/admin/tasks/taskrun/{run.pk}/change/").status_code in (302, 404)
