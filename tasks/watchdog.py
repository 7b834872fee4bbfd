"""A thread in each worker process that records a timeout the task did not obey.

django-q2 stops a task at its timeout with SIGALRM (our run_execute records
that as "timed out"). A task that swallows the exception (a bare `except`) or
waits in C code that releases the GIL keeps running; django-q2's guard then
kills the worker about 3 s later and the attempt would only show up, much
later, as lost (django-q2 issue #262). This watchdog wakes 1 s after the
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

logger = logging.getLogger("tasks")

# Past the timeout, before django-q2's guard kills the worker (timeout + 3 s, checked every 0.5 s).
GRACE_SECONDS = 1.0
POLL_SECONDS = 0.25


class TimeoutWatchdog:
    def __init__(self):
        self._lock = threading.Lock()
        self._armed: tuple | None = None  # (deadline, run, attempt)
        self._fired = False
        self._thread: threading.Thread | None = None

    def arm(self, *, run, attempt, seconds: float) -> None:
        # A forked worker inherits no threads: start ours on first use in each process.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._watch, name="task-timeout-watchdog", daemon=True)
            self._thread.start()
        with self._lock:
            self._armed = (time.monotonic() + seconds + GRACE_SECONDS, run, attempt)
            self._fired = False

    def disarm(self) -> bool:
        """Stop watching; True when the watchdog already recorded this attempt's timeout."""
        with self._lock:
            self._armed = None
            fired, self._fired = self._fired, False
        return fired

    def _watch(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            with self._lock:
                if self._armed is None or self._armed[0] > time.monotonic():
                    continue
                _deadline, run, attempt = self._armed
                self._armed = None
                self._fired = True
            try:
                from tasks import services

                services.record_hard_timeout(run=run, attempt=attempt)
            except Exception:
                logger.exception("Could not record the timeout of task run %s", run.pk)
            finally:
                connections.close_all()  # this thread's own connections


    def _after_fork_in_child(self) -> None:
        # The parent's thread does not exist here, and it may have held the lock at the fork.
        self._lock = threading.Lock()
        self._armed, self._fired, self._thread = None, False, None


watchdog = TimeoutWatchdog()
os.register_at_fork(after_in_child=watchdog._after_fork_in_child)
