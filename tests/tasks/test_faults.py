"""Crash safety: workers killed with SIGKILL mid-task, cancels across a restart, lost Redis packages.

The Redis broker has no delivery receipts (like django-q2's own), so a task
whose cluster dies there is not delivered again by Redis: the scheduled
recovery (recovery.recover_stalled_runs) hands it back, tested at the end.
"""

from __future__ import annotations

import os
import re
import signal
import time

import pytest
from django.db import transaction
from django.db.models import Count
from django.utils import timezone
from django_q.tasks import async_task

from tasks import actions
from tasks.engine import recovery
from tasks.engine.broker import get_task_broker
from tasks.models import TERMINAL, Status, TaskEffect, TaskRun
from tests.tasks.conftest import redis_available, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

KILLS = 20


def submit_tallies(count: int, label: str) -> list[TaskRun]:
    with transaction.atomic():
        # A timeout well above the task's 1 s: a worker starved of CPU by the kills must not time out instead.
        return [actions.task_submit(name="system.tally", arguments={"seconds": 1.0, "label": label}, timeout=6)
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
    unhappy = [(r.status, r.error, list(r.attempt_log.values_list("outcome", "error")))
               for r in TaskRun.objects.filter(pk__in=ids).exclude(status=Status.SUCCEEDED)]
    assert statuses == {Status.SUCCEEDED: len(ids)}, unhappy
    effects = dict(TaskEffect.objects.filter(run__in=ids).values_list("run").annotate(n=Count("pk")))
    assert len(effects) == len(ids) and set(effects.values()) == {1}
    lost = TaskRun.objects.filter(pk__in=ids, lost_attempts__gt=0).count()
    assert lost >= 1
    assert TaskRun.objects.filter(pk__in=killed_runs, attempts__gte=2).exists()


def _monitor_pid(cluster) -> int:
    """The pid of the cluster's django-q2 monitor, from its own log line ("... monitoring at <pid>")."""
    found = re.findall(r"monitoring at (\d+)", cluster.log_path.read_text(errors="replace"))
    assert found, cluster.log_tail()
    return int(found[-1])


def test_a_worker_sigkilled_mid_task_while_its_last_result_is_still_being_written_loses_nothing(
        cluster_factory, tmp_path):
    """django-q2's workers share one result pipe and one lock around each write to it. A worker writes a
    result from a background thread (multiprocessing's feeder), so it could start its next task while that
    write still held the lock; SIGKILLed mid-task then, it took the lock with it, and no result of any worker
    reached the monitor again: every success of the cluster was lost, the runs came back as lost attempts
    until they failed. Here the monitor is stopped (SIGSTOP: a monitor slowed down by its database, made
    certain) while a result larger than the pipe is written, and every worker seen mid-task is SIGKILLed.
    A worker starts no task before its last result is written (tasks.engine.results), so what a kill
    takes is never a lock, and every run succeeds once the monitor goes on."""
    cluster = cluster_factory(broker="orm", workers=2, lease_grace=4).start()
    monitor = _monitor_pid(cluster)
    marker = tmp_path / "large-result-worker"
    os.kill(monitor, signal.SIGSTOP)
    try:
        async_task("tests.tasks.jobs.large_result", str(marker), 1 << 18, broker=get_task_broker())
        runs = submit_tallies(6, "behind-a-large-result")
        wait_for(marker.exists, timeout=30, message="the large result's task to run")
        large = int(marker.read_text())
        kills, killed_runs = [], []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(kills) < 3:
            fresh = timezone.now() - timezone.timedelta(seconds=0.5)
            running = (TaskRun.objects.filter(pk__in=[r.pk for r in runs], status=Status.RUNNING,
                                              updated_at__gte=fresh, worker_pid__in=cluster.worker_pids())
                       .exclude(pk__in=killed_runs).order_by("-updated_at"))
            # The worker whose large result is still being written first, whenever it runs a task.
            candidate = running.filter(worker_pid=large).first() or running.first()
            if candidate is None:
                time.sleep(0.05)
                continue
            os.kill(candidate.worker_pid, signal.SIGKILL)
            kills.append(candidate.worker_pid)
            killed_runs.append(candidate.pk)
            time.sleep(0.6)
        assert kills, "no worker was seen mid-task"
    finally:
        os.kill(monitor, signal.SIGCONT)
    ids = [r.pk for r in runs]
    wait_for(lambda: not TaskRun.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists(), timeout=90,
             interval=0.5, message="every run to finish once the monitor goes on")
    unhappy = [(r.status, r.error, list(r.attempt_log.values_list("outcome", "error")))
               for r in TaskRun.objects.filter(pk__in=ids).exclude(status=Status.SUCCEEDED)]
    assert not unhappy, (kills, large, unhappy)
    effects = dict(TaskEffect.objects.filter(run__in=ids).values_list("run").annotate(n=Count("pk")))
    assert len(effects) == len(ids) and set(effects.values()) == {1}


def _blocked_in_read(pid: int) -> bool:
    """Whether the process's main thread waits in read(2) (syscall 0 on x86-64: /proc/<pid>/syscall); for the
    failure message only."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return f.read().split()[0] == "0"
    except (OSError, IndexError):
        return False


def test_idle_workers_and_the_monitor_sigkilled_while_they_wait_leave_a_working_cluster(cluster_factory):
    """A django-q2 reader waiting for its queue held the queue's read lock all that time: an idle worker
    SIGKILLed (an OOM kill, kill -9) took the task queue's with it and no worker got a package again; the
    monitor killed, the result queue's, and no success was recorded again. Readers now wait holding no
    lock (tasks.engine.queues): after both idle workers and the idle monitor are killed, the cluster's new
    processes run and record every run."""
    cluster = cluster_factory(broker="orm", workers=2, lease_grace=4).start()
    first = submit_tallies(2, "before")
    wait_for(lambda: TaskRun.objects.filter(pk__in=[r.pk for r in first], status=Status.SUCCEEDED).count() == 2,
             timeout=30, message="the first runs")
    from tasks.models import WorkerProcess

    time.sleep(1.0)  # every process back in its wait for the next message
    workers = set(WorkerProcess.objects.filter(ended_at__isnull=True).values_list("pid", flat=True)) & \
        cluster.worker_pids()
    assert len(workers) == 2, workers
    monitor = _monitor_pid(cluster)
    # Without the fix one idle worker (and the monitor) waits in read(2) holding its queue's read lock.
    waiting = [pid for pid in (*workers, monitor) if _blocked_in_read(pid)]
    for pid in (*workers, monitor):
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: _monitor_pid(cluster) != monitor and len(cluster.worker_pids() - workers - {monitor}) >= 4,
             timeout=30, message="the sentinel to start new workers and a new monitor")
    runs = submit_tallies(4, "after")
    ids = [r.pk for r in runs]
    wait_for(lambda: not TaskRun.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists(), timeout=60,
             interval=0.5, message=f"the runs after the kills (blocked in read when killed: {waiting})")
    assert TaskRun.objects.filter(pk__in=ids, status=Status.SUCCEEDED).count() == 4


def test_a_worker_killed_inside_its_timer_lock_does_not_stop_the_sentinels_guard(cluster_factory):
    """django-q2's guard takes each worker's timer lock every cycle; a worker does too, around each result. One
    SIGKILLed holding it stopped the guard for good: no dead worker was replaced again, no timeout enforced.
    The guard now goes on without the lock of a dead holder (tasks.engine.queues)."""
    cluster = cluster_factory(broker="orm", workers=2, lease_grace=4).start()
    async_task("tests.tasks.jobs.die_holding_the_workers_timer_lock", broker=get_task_broker())
    wait_for(lambda: cluster.log_path.read_text(errors="replace").count("after death") >= 1, timeout=30,
             message=f"the guard to replace the worker killed in its timer lock:\n{cluster.log_tail()}")
    from tasks.models import WorkerProcess

    time.sleep(1.0)
    workers = set(WorkerProcess.objects.filter(ended_at__isnull=True).values_list("pid", flat=True)) & \
        cluster.worker_pids()
    for pid in workers:  # and it goes on guarding: these are replaced too
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: cluster.log_path.read_text(errors="replace").count("after death") >= 1 + len(workers),
             timeout=30, message=f"the guard to replace the other workers:\n{cluster.log_tail()}")
    runs = submit_tallies(4, "after-the-guard-went-on")
    ids = [r.pk for r in runs]
    wait_for(lambda: TaskRun.objects.filter(pk__in=ids, status=Status.SUCCEEDED).count() == 4, timeout=60,
             interval=0.5, message="the runs after the kills")


def test_a_cancel_survives_a_cluster_restart(cluster_factory):
    cluster = cluster_factory(broker="orm", workers=1).start()
    run = actions.task_submit(name="system.whoami", countdown=1.5)
    actions.task_cancel(run=run, cancelled_by="ops")
    cluster.stop()
    time.sleep(1.6)  # its time comes while no cluster runs
    cluster.start()
    marker = actions.task_submit(name="system.noop", priority="LOW")
    wait_for(lambda: TaskRun.objects.get(pk=marker.pk).status == Status.SUCCEEDED, timeout=30,
             message="the marker task")
    run.refresh_from_db()
    assert (run.status, run.attempts, run.started_at) == (Status.CANCELLED, 0, None)


def test_a_run_whose_redis_cluster_died_mid_task_is_recovered_and_run_again(cluster_factory):
    if not redis_available():
        pytest.skip("No Redis")
    cluster = cluster_factory(broker="redis", workers=1, lease_grace=1).start()
    run = actions.task_submit(name="system.tally", arguments={"seconds": 2.0, "label": "redis"}, timeout=4)
    wait_for(lambda: TaskRun.objects.get(pk=run.pk).status == Status.RUNNING, timeout=30, message="the run to start")
    os.killpg(cluster.process.pid, signal.SIGKILL)  # the whole cluster, with the only copy of the package
    cluster.process.wait(timeout=10)
    assert recovery.recover_stalled_runs(stalled_for=0) == {"running": 0, "queued": 0}  # its lease still holds
    wait_for(lambda: TaskRun.objects.get(pk=run.pk).lease_until < timezone.now(), timeout=10,
             message="the lease to expire")
    cluster.start()
    assert recovery.recover_stalled_runs(stalled_for=0) == {"running": 1, "queued": 0}
    wait_for(lambda: TaskRun.objects.get(pk=run.pk).status in TERMINAL, timeout=30, message="the rerun")
    run.refresh_from_db()
    assert (run.status, run.attempts, run.lost_attempts) == (Status.SUCCEEDED, 2, 1)
    assert list(run.attempt_log.values_list("outcome", flat=True)) == ["lost", "succeeded"]
    assert TaskEffect.objects.filter(run=run).count() == 1


def test_queued_runs_whose_redis_packages_vanished_are_enqueued_again_in_their_tenant(
        cluster_factory, tenant_lakers, tenant_warriors):
    if not redis_available():
        pytest.skip("No Redis")
    from tasks.engine.broker import get_task_broker

    cluster = cluster_factory(broker="redis", workers=1)  # not started yet: the runs wait in Redis
    runs = [actions.task_submit(name="system.whoami", tenant=tenant) for tenant in (tenant_lakers, tenant_warriors)]
    runs.append(actions.task_submit(name="system.whoami"))
    get_task_broker().purge_queue()  # what a Redis restart without persistence does
    five_minutes_ago = timezone.now() - timezone.timedelta(minutes=5)
    TaskRun.objects.filter(pk__in=[r.pk for r in runs]).update(created_at=five_minutes_ago)
    assert recovery.recover_stalled_runs() == {"running": 0, "queued": 3}
    assert recovery.recover_stalled_runs() == {"running": 0, "queued": 0}  # packages are there now: no duplicates
    cluster.start()
    wait_for(lambda: TaskRun.objects.filter(pk__in=[r.pk for r in runs], status=Status.SUCCEEDED).count() == 3,
             timeout=30, message="the recovered runs")
    # Each recovered run ran in its own tenant's schema, the operator's in public.
    assert [TaskRun.objects.get(pk=r.pk).result["schema"] for r in runs] == ["lakers", "warriors", "public"]
