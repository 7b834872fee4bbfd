"""A task run's page: read-only detail, Cancel / Retry / Run again as permission-checked POSTs, attempts."""

from __future__ import annotations

import pytest
from django.utils import timezone

from tasks import actions
from tasks.models import Status, TaskAttempt, TaskRun
from tests.conftest import PUBLIC_HOST, TenantClient, make_user

pytestmark = pytest.mark.django_db


def page(run) -> str:
    return f"/admin/tasks/taskrun/{run.pk}/change/"


def act(run, verb: str) -> str:
    return f"/admin/tasks/taskrun/{run.pk}/do/{verb}/"


@pytest.fixture
def failed_run(tenant_lakers):
    run = actions.task_submit(name="system.noop", tenant=tenant_lakers, by_operator=True)
    TaskRun.objects.filter(pk=run.pk).update(status=Status.FAILED, finished_at=timezone.now(), attempts=1,
                                             error="ValueError: no such season",
                                             traceback="Traceback (most recent call last):\n  File x\nValueError")
    TaskAttempt.objects.create(run=run, number=1, outcome=TaskAttempt.Outcome.FAILED, worker_pid=4242,
                               started_at=timezone.now(), finished_at=timezone.now(),
                               error="ValueError: no such season")
    run.refresh_from_db()
    return run


def test_the_page_is_a_read_only_detail_with_the_attempts_and_the_traceback(operator_client, failed_run):
    html = operator_client.get(page(failed_run)).content.decode()
    assert "Task run system.noop" in html and "Change task run" not in html
    assert 'name="_save"' not in html and 'type="submit" class="default"' not in html
    assert 'id="task-retry"' in html and 'id="task-run_again"' in html and 'id="task-cancel"' not in html
    assert "#1 Failed" in html and "worker pid 4242" in html and "Traceback (most recent call last)" in html


def test_cancel_is_a_post_that_changes_the_state(operator_client, tenant_lakers):
    run = actions.task_submit(name="system.noop", tenant=tenant_lakers, by_operator=True, countdown=3600)
    assert 'id="task-cancel"' in operator_client.get(page(run)).content.decode()
    assert operator_client.get(act(run, "cancel")).status_code == 405
    response = operator_client.post(act(run, "cancel"))
    assert response.status_code == 302 and response["Location"].endswith(page(run))
    run.refresh_from_db()
    assert run.status == Status.CANCELLED


def test_retry_and_run_again_submit_new_runs(operator_client, failed_run):
    retried = operator_client.post(act(failed_run, "retry"))
    new = TaskRun.objects.get(retry_of=failed_run)
    assert retried["Location"].endswith(page(new))
    operator_client.post(act(failed_run, "run_again"))
    assert TaskRun.objects.filter(name="system.noop", tenant=failed_run.tenant).count() == 3


def test_a_post_without_the_csrf_token_is_refused(operator_client, tenant_lakers):
    run = actions.task_submit(name="system.noop", tenant=tenant_lakers, by_operator=True, countdown=3600)
    strict = TenantClient(PUBLIC_HOST, enforce_csrf_checks=True)
    strict.login_user(operator_client.user, "public")
    assert strict.post(act(run, "cancel")).status_code == 403
    run.refresh_from_db()
    assert run.status != Status.CANCELLED


def test_staff_without_the_change_permission_see_no_buttons_and_cannot_post(tenant_lakers):
    from django.contrib.auth.models import Permission

    run = actions.task_submit(name="system.noop", tenant=tenant_lakers, by_operator=True, countdown=3600)
    viewer = make_user("public", username="viewer", staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_taskrun"))
    client = TenantClient(PUBLIC_HOST)
    client.login_user(viewer, "public")
    html = client.get(page(run)).content.decode()
    assert "Task run system.noop" in html and 'id="task-cancel"' not in html
    assert client.post(act(run, "cancel")).status_code == 403
    run.refresh_from_db()
    assert run.status != Status.CANCELLED


def test_a_tenant_admin_acts_on_its_runs_and_never_sees_another_tenants(lakers_client, tenant_lakers,
                                                                        tenant_warriors):
    own = actions.task_submit(name="system.noop", tenant=tenant_lakers, countdown=3600)
    other = actions.task_submit(name="system.noop", tenant=tenant_warriors, countdown=3600)
    assert lakers_client.get(page(own)).status_code == 200
    assert lakers_client.get(page(other)).status_code == 404
    assert lakers_client.post(act(other, "cancel")).status_code == 404
    other.refresh_from_db()
    assert other.status != Status.CANCELLED
    assert lakers_client.post(act(own, "cancel")).status_code == 302
    own.refresh_from_db()
    assert own.status == Status.CANCELLED
