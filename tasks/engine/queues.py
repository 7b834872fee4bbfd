"""django-q2's process queues, made safe against a process SIGKILLed while it waits or works.

django-q2 joins a cluster's processes with multiprocessing queues: the pusher hands packages to the
workers on one, the workers hand results to the monitor on another. Each queue guards its pipe with a
read lock and a write lock shared by every process, and a process SIGKILLed while it holds one never
releases it. Found on this machine (tests/tasks/test_faults.py):

- A reader blocked in get() holds the read lock all the while it waits: an idle worker SIGKILLed (an OOM
  kill, an operator's kill -9) took the task queue's with it, and no worker got a package again; the
  monitor killed, the result queue's, and no result was recorded again.
- A worker writes its result from a background thread (multiprocessing's feeder) and could start its next
  task while that write still held the write lock (a monitor slow to read, a result larger than the pipe):
  SIGKILLed mid-task then, it took the result queue's write lock with it, and no success of any worker
  reached the monitor again (the runs came back as lost attempts until they failed).

So, in every process of the cluster (install(), from tasks.apps before a cluster starts):

- get() waits for its pipe to be readable holding no lock, and holds the read lock only to take a message
  that is there;
- get() first waits until this process's own puts are in their pipe: a worker takes no package before its
  last result is written, so no task ever runs while its process holds a write lock.

And each worker's `timer` lock (TimerLock), which the sentinel's guard takes every cycle, records its
holder: a worker killed inside it (after a task, around its result's put) stopped the guard for good; now
the guard goes on without the lock of a dead holder.

Left as django-q2 has them (each a window of microseconds, between tasks, never during one): a process
killed while it takes a message or writes one; a worker killed between tasks while its result still waits
for room in a full pipe (the monitor 64 KiB of results behind).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.sharedctypes
import multiprocessing.synchronize
import os
import threading
import time
from multiprocessing.connection import wait as wait_readable
from multiprocessing.reduction import ForkingPickler

from django_q import cluster as django_q_cluster
from django_q import queues as django_q_queues

logger = logging.getLogger("tasks")

# How long get() waits for this process's own writes before saying so in the log (it goes on waiting).
SLOW_WRITE_SECONDS = 30.0


class _Writes:
    """This process's puts not yet in their pipe, per queue (a fresh count in each forked child)."""

    def __init__(self):
        self.pending: dict[int, int] = {}  # id(queue): puts not yet written
        self.changed = threading.Condition()
        self.queues: dict[int, object] = {}  # id(queue): the queue (its feeder thread)


_writes = _Writes()
os.register_at_fork(after_in_child=lambda: globals().__setitem__("_writes", _Writes()))

_installed: dict = {}


def _count(queue_id: int, change: int) -> None:
    writes = _writes
    with writes.changed:
        writes.pending[queue_id] = max(0, writes.pending.get(queue_id, 0) + change)
        writes.changed.notify_all()


def _instrument(queue) -> None:
    """Count each of this queue's writes as its feeder finishes it (before the feeder starts: it reads these)."""
    send_bytes = queue._writer.send_bytes
    on_error = queue._on_queue_feeder_error
    queue_id = id(queue)

    def counted_send(buffer):
        send_bytes(buffer)
        _count(queue_id, -1)  # a failed send goes to on_error, which counts it

    def counted_error(error, obj):
        try:
            on_error(error, obj)
        finally:
            _count(queue_id, -1)

    queue._send_bytes = counted_send
    queue._on_queue_feeder_error = counted_error
    queue._courtside_counted = counted_send
    _writes.queues[queue_id] = queue


def _put(self, obj, block=True, timeout=None):
    if not _expected(self):
        return _installed["put"](self, obj, block, timeout)
    if self._thread is None and getattr(self, "_courtside_counted", None) is not self._send_bytes:
        _instrument(self)
    _count(id(self), +1)
    try:
        _installed["put"](self, obj, block, timeout)
    except BaseException:
        _count(id(self), -1)
        raise


def wait_for_own_writes(*, besides=None, timeout: float | None = None) -> bool:
    """Wait until every put of this process is in its pipe (those on `besides` aside: a process reading the
    queue it writes to must not wait for itself); False if `timeout` passed first."""
    writes = _writes
    deadline = None if timeout is None else time.monotonic() + timeout
    warned_at = time.monotonic()
    skip = id(besides) if besides is not None else None
    with writes.changed:
        while True:
            waiting = {queue_id: n for queue_id, n in writes.pending.items() if n and queue_id != skip}
            for queue_id in list(waiting):
                thread = getattr(writes.queues.get(queue_id), "_thread", None)
                if thread is None or not thread.is_alive():  # no feeder left to write them (a closed queue)
                    writes.pending[queue_id] = 0
                    del waiting[queue_id]
            if not waiting:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            writes.changed.wait(1.0 if left is None else min(left, 1.0))
            if time.monotonic() - warned_at >= SLOW_WRITE_SECONDS:
                warned_at = time.monotonic()
                logger.warning("Process %s still waits for %s result(s) to reach django-q2's monitor",
                               os.getpid(), sum(waiting.values()))


def _get(self, block=True, timeout=None):
    if not block or timeout is not None or not _expected(self) or self._closed:
        return _installed["get"](self, block, timeout)
    wait_for_own_writes(besides=self)
    while True:
        wait_readable([self._reader])  # no lock held: every idle reader wakes, one takes the message
        with self._rlock:
            if not self._poll():
                continue  # another reader took it
            message = self._recv_bytes()
        break
    self._sem.release()
    self.size.increment(-1)  # django-q2's own count of the queue (its qsize and empty)
    return ForkingPickler.loads(message)


_EXPECTED = ("_rlock", "_wlock", "_reader", "_writer", "_poll", "_recv_bytes", "_send_bytes", "_sem", "_thread",
             "_closed", "_on_queue_feeder_error", "size")


def _expected(queue) -> bool:
    """This queue is the multiprocessing Queue these patches were written for (else they step aside)."""
    return all(hasattr(queue, name) for name in _EXPECTED)


def _dead(pid: int) -> bool:
    """The process is gone or a zombie (a killed worker stays one until the sentinel's guard reaps it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True
    except OSError:
        return False


class TimerLock(multiprocessing.synchronize.RLock):
    """django-q2's per-worker `timer` lock, which the sentinel's guard takes for every worker each cycle and the
    worker around each result. A worker SIGKILLed holding it stopped the guard for good (no dead worker
    replaced, no timeout enforced, no schedule fired). The holder's pid is kept beside the lock; a process
    waiting for it goes on without it once that holder is dead."""

    WAIT_SLICE = 0.5

    def __init__(self, *, ctx):
        super().__init__(ctx=ctx)
        self._holder = multiprocessing.sharedctypes.RawValue("i", 0)
        self._skipped = threading.local()

    def _make_methods(self):
        # multiprocessing binds acquire and release to the semaphore itself: ours record the holder.
        pass

    def acquire(self, block=True, timeout=None):
        """As an RLock's; waiting without a timeout, it gives up once the holder is dead (True, not holding)."""
        if block and timeout is None:
            while not self._semlock.acquire(True, self.WAIT_SLICE):
                holder = self._holder.value
                if holder and holder != os.getpid() and _dead(holder):
                    self._stack().append(True)  # its holder was killed holding it: no one will release it
                    return True
        elif not self._semlock.acquire(block, timeout):
            return False
        self._holder.value = os.getpid()
        self._stack().append(False)
        return True

    def release(self):
        stack = self._stack()
        if stack and stack.pop():
            return  # acquired past a dead holder: nothing to release
        if self._semlock._count() == 1:
            self._holder.value = 0
        self._semlock.release()

    def _stack(self) -> list:
        stack = getattr(self._skipped, "stack", None)
        if stack is None:
            stack = self._skipped.stack = []
        return stack

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def __getstate__(self):
        return (super().__getstate__(), self._holder)

    def __setstate__(self, state):
        semlock_state, self._holder = state
        super().__setstate__(semlock_state)
        self._skipped = threading.local()


def _timer_value(typecode_or_type, *args, **kwargs):
    """django_q.cluster's Value (its only use: each worker's timer), with a TimerLock."""
    if "lock" in kwargs:
        return multiprocessing.Value(typecode_or_type, *args, **kwargs)
    return multiprocessing.sharedctypes.Value(typecode_or_type, *args,
                                              lock=TimerLock(ctx=django_q_cluster.get_mp_context()))


def install() -> bool:
    """Patch django-q2's Queue and its workers' timer lock (once per process; no queue or lock is made here).
    A queue of another shape (another Python, another django-q2) is left to the original methods, call by call."""
    if _installed:
        return True
    queue_class = django_q_queues.Queue
    _installed.update(get=queue_class.get, put=queue_class.put, value=django_q_cluster.Value)
    queue_class.get = _get
    queue_class.put = _put
    django_q_cluster.Value = _timer_value
    return True
