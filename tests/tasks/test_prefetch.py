"""A run the dequeue handed to a worker's prefetch is still queued: its start is when its function starts.

Against a real `manage.py qcluster` with one worker (prefetch one package deep): while a long task holds
the worker, the next package is taken off the ORM broker and claimed, but its task has not started.
"""

from __future__ import annotations

import re
import time

import pytest

from tasks import actions
from tasks.models import QueueMessage, Status, TaskRun
from tests.tasks.conftest import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

RUNS = "/api/v1/tasks/runs/"


def test_a_run_waiting_in_a_workers_prefetch_reads_queued_and_its_start_is_written_once_when_it_starts(
        cluster_factory, operator_client):
    cluster_factory(broker="orm", workers=1).start()
    blocker = actions.task_submit(name="system.sleep", arguments={"seconds": 3, "steps": 30})
    wait_for(lambda: TaskRun.objects.get(pk=blocker.pk).progress > 0, timeout=30, message="the blocker to start")
    waiting = actions.task_submit(name="system.whoami")
    # The pusher took its package (delivered once) and put it in the worker pool's queue.
    wait_for(lambda: QueueMessage.objects.filter(run_id=waiting.pk, deliveries=1).exists(), timeout=10,
             message="the pusher to take the package")

    run = TaskRun.objects.get(pk=waiting.pk)
    assert run.started_at is None and run.attempt_log.count() == 0
    api = operator_client.get(f"{RUNS}{waiting.pk}/").json()
    assert (api["status"], api["started_at"]) == ("queued", None)
    assert operator_client.get(RUNS, {"status": "queued"}).json()["results"][0]["id"] == str(waiting.pk)
    progress = operator_client.get("/admin/tasks/taskrun/progress/", {"id": str(waiting.pk)}).json()
    assert progress["runs"][str(waiting.pk)]["status"] == "queued"
    changelist = operator_client.get("/admin/tasks/taskrun/", {"q": str(waiting.pk)}).content.decode()
    assert re.findall(r'class="field-shown_status">([^<]*)<', changelist) == ["Queued"]
    assert re.findall(r'class="task-progress-label" data-run="[^"]+">([^<]*)<', changelist) == ["0% queued"]
    assert operator_client.get("/api/v1/tasks/queue/").json()["queued_by_priority"]["Normal"] == 1

    seen = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        current = TaskRun.objects.get(pk=waiting.pk)
        if current.started_at is not None:
            seen.add(current.started_at)
        if current.status == Status.SUCCEEDED:
            break
        time.sleep(0.05)
    done = TaskRun.objects.get(pk=waiting.pk)
    blocker.refresh_from_db()
    assert done.status == Status.SUCCEEDED and blocker.status == Status.SUCCEEDED
    # Written once (never rewritten), and not before the only worker was free to start it.
    assert seen == {done.started_at}, seen
    assert done.started_at >= blocker.finished_at
    assert done.attempt_log.get().started_at == done.started_at
