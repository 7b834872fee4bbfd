"""A thread in each worker process: it marks a lasting task as running, records a timeout it did not obey,
and writes the worker's heartbeat (worker health, tasks.engine.workers).

Marking: the ORM broker's dequeue claims a run when the pusher takes its
package, before any worker is free, so the run stays `claimed` (shown as
queued) until its function starts. The worker starts it without a statement
of its own (a short task's outcome writes its start); a task that is still
running MARK_AFTER_SECONDS after its start is marked `running` here, with the
time its function started, on this thread's own database connection. So the
run reads as running within a fraction of a second of its start, and the
worker's own path to the task gains no round trip.

Timeouts: django-q2 stops a task at its timeout with SIGALRM (tasks.engine.execution
records that as "timed out"). A task that swallows the exception (a bare
`except`) or waits in C code that releases the GIL keeps running; django-q2's
guard then kills the worker about 3 s later and the attempt would only show up,
much later, as lost (django-q2 issue #262). This watchdog wakes 1 s after the
timeout, while the worker still lives, and records the attempt as timed out
and retried or failed per the run's policy, on its own database connection.
A task that holds the GIL in C code stops this thread too: that attempt is
recorded as lost when its package comes back.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.db import connections

from tasks import conf
from tasks.engine import workers
from tasks.engine.claim import run_mark_started
from tasks.engine.outcome import record_hard_timeout

logger = logging.getLogger("tasks")

# Past the timeout, before django-q2's guard kills the worker (timeout + 3 s, checked every 0.5 s).
GRACE_SECONDS = 1.0
# A task running this long is marked running (within one more poll).
MARK_AFTER_SECONDS = 0.1
POLL_SECONDS = 0.1


class TimeoutWatchdog:
    def __init__(self):
        self._lock = threading.Lock()
        self._armed: tuple | None = None  # (deadline, run, attempt)
        self._mark_at: float | None = None  # when to mark the armed attempt's run running, if still to do
        self._fired = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start this process's thread (a cluster worker does at its spawn, so it heartbeats while idle)."""
        # A forked worker inherits no threads: start ours in each process.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._watch, name="task-timeout-watchdog", daemon=True)
            self._thread.start()

    def arm(self, *, run, attempt, seconds: float, mark_started: bool = False) -> None:
        self.start()
        now = time.monotonic()
        with self._lock:
            self._armed = (now + seconds + GRACE_SECONDS, run, attempt)
            self._mark_at = now + MARK_AFTER_SECONDS if mark_started else None
            self._fired = False

    def disarm(self) -> bool:
        """Stop watching; True when the watchdog already recorded this attempt's timeout."""
        with self._lock:
            self._armed, self._mark_at = None, None
            fired, self._fired = self._fired, False
        return fired

    def _watch(self) -> None:
        next_beat = time.monotonic()
        while True:
            time.sleep(POLL_SECONDS)
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + conf.worker_heartbeat()
                self._heartbeat()
            mark = timeout = None
            with self._lock:
                now = time.monotonic()
                if self._armed is not None and self._mark_at is not None and self._mark_at <= now:
                    mark, self._mark_at = self._armed, None
                if self._armed is not None and self._armed[0] <= now:
                    timeout, self._armed, self._mark_at = self._armed, None, None
                    self._fired = True
            if mark is not None:
                self._mark(mark[1], mark[2])
            if timeout is not None:
                self._record_timeout(timeout[1], timeout[2])

    @staticmethod
    def _mark(run, attempt) -> None:
        try:
            run_mark_started(run_id=run.pk, attempt=attempt.number, started_at=attempt.started_at,
                             worker_pid=attempt.worker_pid or os.getpid())
        except Exception:
            logger.exception("Could not mark task run %s running", run.pk)
            connections.close_all()  # this thread's own connections; the next mark opens a fresh one

    @staticmethod
    def _heartbeat() -> None:
        try:
            workers.heartbeat()  # worker health: a no-op outside a recorded cluster worker
        except Exception:
            logger.exception("Could not write the heartbeat of worker %s", os.getpid())
            connections.close_all()

    @staticmethod
    def _record_timeout(run, attempt) -> None:
        try:
            record_hard_timeout(run=run, attempt=attempt)
        except Exception:
            logger.exception("Could not record the timeout of task run %s", run.pk)
        finally:
            connections.close_all()  # this thread's own connections

    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here, and it may have held the lock at the fork.
        self._lock = threading.Lock()
        self._armed, self._mark_at, self._fired, self._thread = None, None, False, None


watchdog = TimeoutWatchdog()
os.register_at_fork(after_in_child=watchdog._after_fork_in_child)
