"""The monitor's acknowledgements of successes, recorded in batches: one statement for what arrived together.

django-q2's monitor takes finished tasks off its result queue one at a time
and calls the broker's acknowledge() for each. In the cluster's monitor
process, an acknowledgement carrying a success (tasks.engine.broker.Acknowledgement)
is held while more results wait on that queue, and the held ones are recorded
together (tasks.engine.outcome.record_successes: one statement for the runs,
their attempt rows and, on the ORM broker, the deletion of their packages) as
soon as the queue is empty (checked after each result, on django-q2's
post_execute signal), when ACK_BATCH_MAX are held, and when the monitor exits.
An idle cluster so records a success as soon as before (the queue is empty
after it); a busy one writes one statement per batch of results.

A steady stream (results arriving less than LINGER_SECONDS apart, each found
alone on the queue) would otherwise still be one statement per result: the
queue is empty after each. There the monitor lingers: with the queue empty,
it waits up to LINGER_SECONDS from the oldest held success for the next
result (woken by it at once) before writing, so a stream of N results a
second costs at most 1/LINGER_SECONDS statements a second, not N: the
statements grow with time, not with the runs. A result after a quiet spell
(the first one, or one more than LINGER_SECONDS after the last) is written at
once, as before; a held success waits at most LINGER_SECONDS longer.

Durability is unchanged: a held success is one the monitor has not written
yet, as before its statement; if the monitor dies holding it, the package
comes back after its lease and the run's claim records the attempt as lost
(side effects that must happen once use effect_once).

Anywhere but the monitor (a test, a command) acknowledge() records at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from multiprocessing import util

from django_q.signals import post_execute

logger = logging.getLogger("tasks")

ACK_BATCH_MAX = 200
# How long a success may wait, in a stream of results, for the next ones to share its statement.
LINGER_SECONDS = 0.02

_held: list[tuple[object, object]] = []  # (broker, acknowledgement), in arrival order
# The monitor's pid, its exit finalizer, when the oldest held success came, when the last result came.
_state = {"pid": None, "finalizer": None, "oldest": 0.0, "last": None}


def monitor_result_queue(broker):
    """The result queue of the django-q2 monitor this process is, or None (not the cluster's monitor)."""
    queue = getattr(broker, "result_queue", None)
    if queue is not None:
        return queue
    process = multiprocessing.current_process()
    target = getattr(process, "_target", None)
    if target is None or getattr(target, "__module__", "") != "django_q.monitor":
        return None
    args = getattr(process, "_args", ()) or ()
    return args[0] if args and hasattr(args[0], "empty") else None


def hold(broker, acknowledgement) -> bool:
    """Hold a success's acknowledgement for the next batch; False if this process records at once."""
    if monitor_result_queue(broker) is None:
        return False
    if _state["pid"] != os.getpid():  # a fresh process (forked): nothing held here is ours
        _held.clear()
        _state["pid"] = os.getpid()
        _state["finalizer"] = util.Finalize(None, flush, exitpriority=100)  # the monitor's graceful exit
        _state["last"] = None
    if not _held:
        _state["oldest"] = time.monotonic()
    _held.append((broker, acknowledgement))
    if len(_held) >= ACK_BATCH_MAX:
        flush()
    return True


def flush() -> int:
    """Record every held success, a statement per broker; how many were held."""
    if not _held or _state["pid"] != os.getpid():
        return 0
    batch = list(_held)
    _held.clear()
    by_broker: dict[int, tuple[object, list]] = {}
    for broker, acknowledgement in batch:
        by_broker.setdefault(id(broker), (broker, []))[1].append(acknowledgement)
    for broker, acknowledgements in by_broker.values():
        broker.acknowledge_batch(acknowledgements)
    return len(batch)


def _after_each_result(sender, task=None, **kwargs):
    """django-q2's monitor sent post_execute for a result: write the batch once no result waits behind it.

    In a stream (this result came less than LINGER_SECONDS after the one before), an empty queue is waited
    on, up to LINGER_SECONDS from the oldest held success, before the batch is written.
    """
    now = time.monotonic()
    previous, _state["last"] = _state["last"], now
    if not _held or _state["pid"] != os.getpid():
        return
    queue = monitor_result_queue(_held[0][0])
    try:
        waiting = queue is not None and not queue.empty()
        if not waiting and queue is not None and previous is not None and now - previous < LINGER_SECONDS:
            left = LINGER_SECONDS - (now - _state["oldest"])
            poll = getattr(queue, "_poll", None)  # multiprocessing's: the pipe readable, no lock taken
            if left > 0 and poll is not None:
                waiting = bool(poll(left))
    except (OSError, ValueError, EOFError):  # a closed queue: the monitor is going
        waiting = False
    if not waiting:
        flush()


post_execute.connect(_after_each_result, dispatch_uid="tasks.engine.acknowledgements", weak=False)
