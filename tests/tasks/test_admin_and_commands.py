"""The task admin on both sites, and the task_submit / task_status / task_cancel commands."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django_q.models import Schedule

from tasks import actions
from tasks.models import Status, TaskRun, TaskSchedule

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_runs(tenant_lakers, tenant_warriors, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        lakers_run = actions.task_submit(name="system.noop", tenant=tenant_lakers, arguments={})
        # CRITICAL for a tenant is the operator's to give (issue 14.9): submitted as the operator.
        warriors_run = actions.task_submit(name="system.sleep", tenant=tenant_warriors, priority="CRITICAL",
                                            arguments={"seconds": 1}, by_operator=True)
    return lakers_run, warriors_run


def test_the_operator_changelist_shows_every_run_and_the_queue_depth_chart(operator_client, two_runs):
    response = operator_client.get("/admin/tasks/taskrun/")
    body = response.content.decode()
    assert response.status_code == 200
    assert "Queue depth by priority" in body and 'class="queue-depth-count">1<' in body
    assert str(two_runs[0].pk) in body and str(two_runs[1].pk) in body
    assert "<progress" in body and "/admin/tasks/taskrun/progress/" in body


def test_a_tenant_admin_shows_only_its_own_runs_and_progress(lakers_client, two_runs):
    lakers_run, warriors_run = two_runs
    body = lakers_client.get("/admin/tasks/taskrun/").content.decode()
    assert str(lakers_run.pk) in body and str(warriors_run.pk) not in body
    assert lakers_client.get(f"/admin/tasks/taskrun/{warriors_run.pk}/change/").status_code in (302, 404)
    actions.progress_report(run_id=lakers_run.pk, fraction=0.5, message="half")
    data = lakers_client.get("/admin/tasks/taskrun/progress/",
                             {"id": [str(lakers_run.pk), str(warriors_run.pk)]}).json()
    assert data["runs"] == {str(lakers_run.pk): {"progress": 0.5, "status": "queued", "message": "half"}}


def test_the_cancel_action_cancels_only_runs_of_the_admins_tenant(lakers_client, two_runs):
    lakers_run, warriors_run = two_runs
    lakers_client.post("/admin/tasks/taskrun/", {"action": "cancel_runs",
                                                 "_selected_action": [lakers_run.pk, warriors_run.pk]})
    lakers_run.refresh_from_db()
    warriors_run.refresh_from_db()
    assert (lakers_run.status, warriors_run.status) == (Status.CANCELLED, Status.QUEUED)


def test_the_retry_action_resubmits_a_failed_run_as_a_new_run(operator_client, two_runs,
                                                              django_capture_on_commit_callbacks):
    failed = two_runs[0]
    TaskRun.objects.filter(pk=failed.pk).update(status=Status.FAILED)
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post("/admin/tasks/taskrun/", {"action": "retry_runs", "_selected_action": [failed.pk]})
    retry = TaskRun.objects.get(retry_of=failed)
    assert (retry.status, retry.schema_name) == (Status.QUEUED, "lakers")


def test_a_tenant_admin_creates_a_schedule_for_itself_and_bad_arguments_are_form_errors(lakers_client,
                                                                                       tenant_lakers):
    url = "/admin/tasks/taskschedule/add/"
    bad = lakers_client.post(url, {"name": "n", "task_name": "league.recompute_season_averages",
                                   "arguments": '{"season": "last"}', "priority": 1, "cron": "0 4 * * *",
                                   "enabled": "on"})
    assert bad.status_code == 200 and "season" in bad.content.decode()
    assert not TaskSchedule.objects.exists()
    good = lakers_client.post(url, {"name": "nightly", "task_name": "league.recompute_season_averages",
                                    "arguments": '{"season": "2025-26"}', "priority": 0, "cron": "0 4 * * *",
                                    "enabled": "on"})
    assert good.status_code == 302, good.content.decode()[:2000]
    schedule = TaskSchedule.objects.get()
    assert schedule.tenant == tenant_lakers
    assert Schedule.objects.get(pk=schedule.q_schedule_id).cron == "0 4 * * *"


def test_task_submit_refuses_bad_input_with_a_command_error_and_queues_nothing(tenant_lakers):
    for args in (["no.such"], ["system.sleep", "--args", '{"seconds": "x"}'], ["system.noop", "--countdown", "-3"],
                 ["system.noop", "--args", "{not json"], ["system.noop", "--tenant", "ghost"]):
        with pytest.raises(CommandError):
            call_command("task_submit", *args)
    assert not TaskRun.objects.exists()


def test_task_submit_status_and_cancel_from_the_command_line(tenant_lakers, capsys):
    call_command("task_submit", "system.sleep", "--args", '{"seconds": 2}', "--tenant", "lakers",
                 "--priority", "high", "--countdown", "60")
    run = TaskRun.objects.get()
    assert (run.schema_name, run.priority, run.status) == ("lakers", 2, Status.QUEUED)
    call_command("task_status", str(run.pk))
    assert "Queued" in capsys.readouterr().out
    call_command("task_cancel", str(run.pk))
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    with pytest.raises(CommandError, match="already cancelled"):
        call_command("task_cancel", str(run.pk))
    with pytest.raises(CommandError, match="No task run"):
        call_command("task_status", "not-an-id")
    call_command("task_submit", "--list")
    assert "league.train_points_model" in capsys.readouterr().out



def test_the_finished_runs_chart_counts_per_hour_and_per_tenant(operator_client, lakers_client, two_runs):
    import re

    from django.utils import timezone

    lakers_run, warriors_run = two_runs
    two_hours_ago = timezone.now() - timezone.timedelta(hours=2)
    TaskRun.objects.filter(pk=lakers_run.pk).update(status=Status.SUCCEEDED, finished_at=two_hours_ago)
    TaskRun.objects.filter(pk=warriors_run.pk).update(status=Status.FAILED, finished_at=timezone.now())

    def bars(client) -> list[str]:
        body = client.get("/admin/tasks/taskrun/").content.decode()
        assert 'id="task-outcomes"' in body
        return re.findall(r'<title>(\d\dh: \d+)</title>', body)

    hour = f"{two_hours_ago:%H}h"
    assert f"{hour}: 1" in bars(lakers_client)  # the lakers success, two hours ago
    assert not any(not b.endswith(": 0") and not b.startswith(hour) for b in bars(lakers_client))  # no warriors
    operator_bars = bars(operator_client)
    assert f"{hour}: 1" in operator_bars and sum(int(b.rsplit(": ", 1)[1]) for b in operator_bars) == 2
