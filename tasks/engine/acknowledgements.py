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
from multiprocessing import util

from django_q.signals import post_execute

logger = logging.getLogger("tasks")

ACK_BATCH_MAX = 200

_held: list[tuple[object, object]] = []  # (broker, acknowledgement), in arrival order
_state = {"pid": None, "finalizer": None}


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
    """django-q2's monitor sent post_execute for a result: write the batch once no result waits behind it."""
    if not _held or _state["pid"] != os.getpid():
        return
    queue = monitor_result_queue(_held[0][0])
    try:
        waiting = queue is not None and not queue.empty()
    except (OSError, ValueError):  # a closed queue: the monitor is going
        waiting = False
    if not waiting:
        flush()


post_execute.connect(_after_each_result, dispatch_uid="tasks.engine.acknowledgements", weak=False)
