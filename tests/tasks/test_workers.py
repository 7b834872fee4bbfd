"""Worker health on a real cluster: each worker's pid, current run, heartbeat and tasks done; a killed worker
that held a run is reported lost and its run recovered."""

from __future__ import annotations

import os
import signal

import pytest
from django.utils import timezone

from tasks import actions
from tasks.engine import workers
from tasks.models import Status, TaskRun, WorkerProcess
from tests.tasks.conftest import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def _live(cluster):
    return WorkerProcess.objects.filter(cluster=cluster.name, ended_at__isnull=True)


def test_each_worker_heartbeats_with_its_run_and_a_killed_one_is_reported_and_its_run_recovered(
        cluster_factory, operator_client):
    cluster = cluster_factory(broker="orm", workers=1, lease_grace=1)
    cluster.env["TASKS_WORKER_HEARTBEAT"] = "0.3"  # the workers' setting,
    cluster.q_cluster["worker_heartbeat"] = 0.3  # and this process's (the page's "not heartbeating")
    cluster.start()
    worker = wait_for(lambda: _live(cluster).first(), timeout=30, message="the worker to record itself")
    assert worker.pid in cluster.worker_pids()
    beat = worker.last_heartbeat_at
    wait_for(lambda: _live(cluster).get(pk=worker.pk).last_heartbeat_at > beat, timeout=10, message="a heartbeat")

    done = actions.task_submit(name="system.noop")
    wait_for(lambda: TaskRun.objects.get(pk=done.pk).status == Status.SUCCEEDED, timeout=30, message="a first run")
    wait_for(lambda: _live(cluster).get(pk=worker.pk).tasks_done >= 1, timeout=10, message="tasks done counted")

    run = actions.task_submit(name="system.tally", arguments={"seconds": 3.0, "label": "worker"}, timeout=5)
    holding = wait_for(lambda: _live(cluster).filter(current_run=run.pk).first(), timeout=30,
                       message="the worker to name its run in a heartbeat")
    assert holding.pk == worker.pk and holding.current_since <= timezone.now()
    body = operator_client.get("/admin/tasks/workerprocess/").content.decode()
    assert str(worker.pid) in body and "Running a task" in body and str(run.pk)[:8] in body

    os.kill(worker.pid, signal.SIGKILL)  # OOM, a stuck extension: no clean exit, no more heartbeats
    replacement = wait_for(lambda: _live(cluster).exclude(pk=worker.pk).first(), timeout=30,
                           message="the guard to start another worker")
    wait_for(lambda: "Not heartbeating" in operator_client.get("/admin/tasks/workerprocess/").content.decode(),
             timeout=10, message="the page to show the silent worker")
    # What the every-minute recovery job does. The page says "not heartbeating" after 3 beats (0.9 s), the
    # sweep here wants 1.0 s of silence: sweep until it is marked lost. The cluster's own recovery job (a
    # system schedule an earlier test of the session may leave) can sweep it first: a lost worker is reported
    # by exactly one sweep, with the run it held.
    lost = []

    def swept():
        lost.extend(workers.workers_sweep(stale_after=1.0))
        return WorkerProcess.objects.get(pk=worker.pk).end == WorkerProcess.End.LOST

    wait_for(swept, timeout=10, interval=0.2, message="the silent worker to be swept as lost")
    assert lost in ([], [{"pid": worker.pid, "host": worker.host, "run": str(run.pk)}])
    assert WorkerProcess.objects.get(pk=worker.pk).end == WorkerProcess.End.LOST
    assert replacement.pid in cluster.worker_pids()

    # The run it held comes back after its lease and runs to the end on the new worker.
    wait_for(lambda: TaskRun.objects.get(pk=run.pk).status == Status.SUCCEEDED, timeout=60, interval=0.3,
             message="the held run to be recovered")
    run.refresh_from_db()
    assert run.lost_attempts == 1 and list(run.attempt_log.values_list("outcome", flat=True)) == ["lost", "succeeded"]

    cluster.stop()  # a graceful stop: each live worker records how it ended
    wait_for(lambda: not _live(cluster).exists(), timeout=10, message="the workers to record their exit")
    assert WorkerProcess.objects.get(pk=replacement.pk).end == WorkerProcess.End.STOPPED
