"""Worker health: each cluster worker process's liveness, from its own heartbeats.

A worker records itself when django-q2 spawns it (post_spawn, tasks.signals),
then its watchdog thread (tasks.engine.watchdog) writes a heartbeat every
conf.worker_heartbeat() seconds (5) on the thread's own connection: the run it is executing
now and since when, and how many tasks it has done. Nothing is written per
task: Delivery notes the run in memory (note_started / note_finished), the
next heartbeat carries it. A worker that exits cleanly records why (recycled
after its task quota, or stopped with its cluster); one that stops
heartbeating for three heartbeats (killed, OOM, stuck in C code holding the GIL)
is marked lost by the recovery sweep (tasks.recover_stalled_runs, every
minute), naming the run it held: that run comes back after its lease and its
claim records the attempt as lost (tasks.engine.claim), as for any dead worker.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
from multiprocessing import util as multiprocessing_util

from django.db import connection, transaction
from django.utils import timezone

from core.db import raw_cursor
from tasks import conf
from tasks.engine.sql import public_table
from tasks.models import WorkerProcess

logger = logging.getLogger("tasks")

# Three heartbeats missed: the worker is gone (a busy database may delay one, not three).
STALE_HEARTBEATS = 3


class _State:
    """This worker process's own record (one per process; reset in a forked child)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.row_id: int | None = None
        self.run_id: str | None = None
        self.run_since: dt.datetime | None = None
        self.busy = False
        self.tasks_done = 0


_state = _State()
os.register_at_fork(after_in_child=lambda: globals().__setitem__("_state", _State()))


def worker_started(*, name: str = "") -> int:
    """Record this process as a worker of the cluster (django-q2's post_spawn, in the new worker)."""
    now = timezone.now()
    worker = WorkerProcess.objects.create(
        host=socket.gethostname()[:255], pid=os.getpid(), cluster=conf.queue_name()[:100], name=(name or "")[:100],
        started_at=now, last_heartbeat_at=now,
    )
    _state.row_id = worker.pk
    # Runs at a clean exit of the worker process (multiprocessing's own finalizers), not when it is killed.
    multiprocessing_util.Finalize(None, worker_exited, exitpriority=100)
    return worker.pk


def note_started(run_id=None) -> None:
    """A package starts in this worker (the run's id, None for a plain package): in memory only."""
    with _state.lock:
        _state.busy = True
        _state.run_id, _state.run_since = (str(run_id), timezone.now()) if run_id is not None else (None, None)


def note_finished() -> None:
    with _state.lock:
        if _state.busy:
            _state.tasks_done += 1
        _state.busy, _state.run_id, _state.run_since = False, None, None


def heartbeat() -> bool:
    """Write this worker's heartbeat (the watchdog thread calls it); False when this is no recorded worker."""
    if _state.row_id is None:
        return False
    with _state.lock:
        values = [_state.run_id, _state.run_since, _state.tasks_done, _state.row_id]
    with raw_cursor() as cursor:
        cursor.execute(
            f"UPDATE {public_table(WorkerProcess)} SET last_heartbeat_at = now(), current_run_id = %s, "
            "current_since = %s, tasks_done = %s WHERE id = %s AND ended_at IS NULL", values)
    return True


def worker_exited() -> None:
    """A clean exit: recycled after its quota of tasks (django-q2's `recycle`), or stopped with its cluster."""
    if _state.row_id is None:
        return
    recycle = int(conf.q_cluster().get("recycle", 500) or 0)
    end = WorkerProcess.End.RECYCLED if recycle and _state.tasks_done >= recycle else WorkerProcess.End.STOPPED
    try:
        WorkerProcess.objects.filter(pk=_state.row_id, ended_at__isnull=True).update(
            ended_at=timezone.now(), end=end, tasks_done=_state.tasks_done, current_run=None, current_since=None)
    except Exception:
        logger.exception("Could not record the exit of worker %s", os.getpid())
    finally:
        connection.close()


def workers_sweep(*, stale_after: float | None = None) -> list[dict]:
    """Mark workers that stopped heartbeating as lost, and report each with the run it held."""
    stale_after = STALE_HEARTBEATS * conf.worker_heartbeat() if stale_after is None else stale_after
    cutoff = timezone.now() - dt.timedelta(seconds=stale_after)
    with transaction.atomic():
        lost = list(WorkerProcess.objects.select_for_update(skip_locked=True)
                    .filter(ended_at__isnull=True, last_heartbeat_at__lt=cutoff)
                    .values("pk", "host", "pid", "cluster", "current_run_id", "last_heartbeat_at"))
        WorkerProcess.objects.filter(pk__in=[w["pk"] for w in lost]).update(
            ended_at=timezone.now(), end=WorkerProcess.End.LOST)
    for worker in lost:
        held = f"while holding task run {worker['current_run_id']} (it comes back after its lease)" if worker[
            "current_run_id"] else "while idle"
        logger.warning("Worker %s on %s (cluster %s) stopped heartbeating at %s %s.", worker["pid"], worker["host"],
                       worker["cluster"], worker["last_heartbeat_at"].isoformat(), held)
    return [{"pid": w["pid"], "host": w["host"], "run": str(w["current_run_id"]) if w["current_run_id"] else None}
            for w in lost]
