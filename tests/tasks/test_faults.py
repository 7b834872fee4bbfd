"""Crash safety on the ORM broker: workers killed with SIGKILL mid-task, and cancels across a restart.

The Redis broker has no delivery receipts (like django-q2's own), so a task
whose worker dies there is not redelivered: this file is about the ORM broker.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from tasks import services
from tasks.models import TERMINAL, Status, TaskEffect, TaskRun
from tests.tasks.conftest import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

KILLS = 20


def submit_tallies(count: int, label: str) -> list[TaskRun]:
    with transaction.atomic():
        return [services.task_submit(name="system.tally", arguments={"seconds": 1.0, "label": label}, timeout=3)
                for _ in range(count)]


def test_sigkilled_workers_lose_no_task_and_every_side_effect_happens_once(cluster_factory):
    cluster = cluster_factory(broker="orm", workers=2, lease_grace=4).start()
    runs = submit_tallies(30, "first")
    kills, killed_runs = 0, []
    deadline = time.monotonic() + 60
    while kills < KILLS and time.monotonic() < deadline:
        # A run a worker started under half a second ago is surely inside its 1 s task, not between tasks.
        fresh = timezone.now() - timezone.timedelta(seconds=0.5)
        candidate = (TaskRun.objects.filter(status=Status.RUNNING, started_at__isnull=False,
                                            updated_at__gte=fresh, worker_pid__in=cluster.worker_pids())
                     .exclude(pk__in=killed_runs).order_by("-updated_at").first())
        if candidate is None:
            if not TaskRun.objects.exclude(status__in=TERMINAL).exists():
                runs += submit_tallies(10, "more")  # keep tasks flowing until all the kills are done
            time.sleep(0.05)
            continue
        # The running attempt has no row yet (written when it ends); its claim set the lease from its start.
        attempt_started = candidate.lease_until - timezone.timedelta(seconds=candidate.timeout + 4)
        if attempt_started < fresh:
            time.sleep(0.02)
            continue
        os.kill(candidate.worker_pid, signal.SIGKILL)
        kills += 1
        killed_runs.append(candidate.pk)
        time.sleep(0.6)  # the guard notices a dead worker within a cycle and starts another
    assert kills == KILLS, f"only {kills} kills in time"

    ids = [r.pk for r in runs]
    wait_for(lambda: not TaskRun.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists(), timeout=120,
             interval=0.5, message="every run to finish after the kills")
    statuses = dict(TaskRun.objects.filter(pk__in=ids).values_list("status").annotate(n=Count("pk")))
    assert statuses == {Status.SUCCEEDED: len(ids)}, statuses
    effects = dict(TaskEffect.objects.filter(run__in=ids).values_list("run").annotate(n=Count("pk")))
    assert len(effects) == len(ids) and set(effects.values()) == {1}
    lost = TaskRun.objects.filter(pk__in=ids, lost_attempts__gt=0).count()
    assert lost >= 1
    assert TaskRun.objects.filter(pk__in=killed_runs, attempts__gte=2).exists()


def test_a_cancel_survives_a_cluster_restart(cluster_factory):
    cluster = cluster_factory(broker="orm", workers=1).start()
    run = services.task_submit(name="system.whoami", countdown=1.5)
    services.task_cancel(run=run, cancelled_by="ops")
    cluster.stop()
    time.sleep(1.6)  # its time comes while no cluster runs
    cluster.start()
    marker = services.task_submit(name="system.noop", priority="LOW")
    wait_for(lambda: TaskRun.objects.get(pk=marker.pk).status == Status.SUCCEEDED, timeout=30,
             message="the marker task")
    run.refresh_from_db()
    assert (run.status, run.attempts, run.started_at) == (Status.CANCELLED, 0, None)
