"""Worker health from the operator API and a command, as from the admin's Workers page (issue 18: every
capability from the admin, a command and the API). The rows are what workers write (tests/tasks/test_workers.py
runs a real cluster and SIGKILLs a worker); here they are written directly, in each state a worker can be in."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone

from tasks.models import WorkerProcess
from tests.conftest import TenantClient, make_user, tenant_host

pytestmark = pytest.mark.django_db


@pytest.fixture
def workers(db):
    WorkerProcess.objects.all().delete()
    now = timezone.now()

    def worker(pid, beat_ago, **fields):
        return WorkerProcess.objects.create(host="node-a", pid=pid, cluster="courtside", name=f"Process-{pid}",
                                            started_at=now - dt.timedelta(minutes=5),
                                            last_heartbeat_at=now - dt.timedelta(seconds=beat_ago), **fields)

    return {
        "idle": worker(101, 1, tasks_done=7),
        "silent": worker(102, 600, tasks_done=3),
        "recycled": worker(90, 900, tasks_done=500, ended_at=now, end=WorkerProcess.End.RECYCLED),
    }


def test_the_operator_api_lists_each_worker_with_its_state_and_heartbeat_age(operator_client, workers):
    response = operator_client.get("/api/v1/tasks/workers/")
    assert response.status_code == 200, response.content
    rows = {row["pid"]: row for row in response.json()["results"]}
    assert set(rows) == {101, 102, 90}
    assert rows[101]["state"] == "Idle" and rows[101]["heartbeating"] is True and rows[101]["tasks_done"] == 7
    assert rows[102]["heartbeating"] is False and rows[102]["state"].startswith("Not heartbeating for")
    assert rows[102]["last_heartbeat_age_seconds"] >= 600
    assert rows[90]["end"] == "recycled" and rows[90]["heartbeating"] is False and rows[90]["ended_at"]
    live = operator_client.get("/api/v1/tasks/workers/?live=true").json()["results"]
    assert sorted(row["pid"] for row in live) == [101, 102]  # not ended, heartbeating or not
    bad = operator_client.get("/api/v1/tasks/workers/?live=maybe")
    assert bad.status_code == 400 and bad.json()["error"]["code"]


def test_workers_are_the_operators_only(workers, tenant_lakers, client):
    assert client.get("/api/v1/tasks/workers/", HTTP_HOST="localhost").status_code in (401, 403)
    user = make_user("lakers", username="gm", superuser=True)
    lakers = TenantClient(tenant_host("lakers"))
    lakers.login_user(user, "lakers")
    assert lakers.get("/api/v1/tasks/workers/").status_code == 404  # no such path on a tenant host


def test_the_command_lists_live_workers_and_all_with_all(workers, capsys):
    call_command("task_workers")
    out = capsys.readouterr().out
    assert "101" in out and "Idle" in out and "Not heartbeating for" in out and "90 " not in out
    assert "2 live worker(s), 1 heartbeating" in out
    call_command("task_workers", "--all")
    out = capsys.readouterr().out
    assert "Recycled" in out and "500" in out
