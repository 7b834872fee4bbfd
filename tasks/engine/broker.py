"""The broker interface of the engine: which broker, what a package says, how a run is handed to it.

As in django-q2's `brokers/__init__.py`, the broker is chosen by a setting
(`Q_CLUSTER["broker_class"]`, read at call time) and every broker speaks the
same small interface (enqueue, dequeue, acknowledge, sizes); ours are
`tasks.engine.orm_broker.PriorityORMBroker` (PostgreSQL, the default) and
`tasks.engine.redis_broker.PriorityRedisBroker`. Both dispatch strictly by
priority (CRITICAL > HIGH > NORMAL > LOW) and, within a priority, by tenants
in turn, reading the priority, not-before time, lease and tenant from the
signed package itself (the `_priority`, `_eta`, `_lease` keyword arguments and
`courtside_tenant`), so a plain `async_task` through them still works: NORMAL,
now, the cluster's retry time, the operator's turn.

Fairness: within the highest priority that has work, tenants take turns
(round-robin, as Hatchet's concurrency groups do), so a tenant flooding 10,000
runs delays another tenant's next run by one turn, not by 10,000 runs.

Starvation: dispatch is strict between priorities. Under a constant CRITICAL
stream that keeps every worker busy, LOW work waits for as long as the stream
lasts; nothing ages it upwards. Use priorities for urgency, not for volume.
"""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
from collections.abc import Iterable
from typing import NamedTuple

from django.utils import timezone
from django_q.brokers import Broker
from django_q.signals import pre_enqueue
from django_q.signing import BadSignature, SignedPackage

from tasks import conf
from tasks.models import Priority, TaskRun, parse_priority

# What a cluster worker calls for a package of a TaskRun (stored in packages: the path stays).
RUN_FUNC = "tasks.runner.execute"
# The key of a package (the task dict django-q2 signs) naming whose turn it is: a tenant's id, or 0.
TENANT_KEY = "courtside_tenant"


def package_hints(payload: str) -> tuple[int, float | None, int | None, str | None, int]:
    """(priority, eta as a unix time or None, lease seconds or None, the TaskRun id or None, tenant key)."""
    try:
        task = SignedPackage.loads(payload)
    except (BadSignature, TypeError, ValueError):
        return Priority.NORMAL, None, None, None, 0
    kwargs = task.get("kwargs") or {}
    try:
        priority = parse_priority(kwargs.get("_priority", Priority.NORMAL))
    except ValueError:
        priority = Priority.NORMAL  # a plain package's own keyword argument, not ours
    lease = kwargs.get("_lease")
    if lease is None and task.get("timeout"):
        lease = int(task["timeout"]) + conf.lease_grace()
    args = task.get("args") or ()
    run_id = str(args[0]) if task.get("func") == RUN_FUNC and args else None
    tenant_key = task.get(TENANT_KEY) or 0
    return priority, kwargs.get("_eta"), lease, run_id, tenant_key if isinstance(tenant_key, int) else 0


class ClaimedMessage(int):
    """The id of an ORM package (django-q2's ack_id) that also carries the claim of its TaskRun.

    The dequeue claims the run in the statement that takes its package; the
    claim travels to the worker as the package's ack_id (the only value the
    pusher passes through untouched), and the worker runs the task without a
    statement of its own. As an int it still works wherever django-q2 uses the
    ack_id. A package whose run could not be claimed (cancelled, running
    elsewhere, gone) has a plain id: the worker's tasks.engine.execution decides.
    """

    def __new__(cls, message_id: int, claim: dict):
        instance = super().__new__(cls, message_id)
        instance.claim = claim
        return instance

    def __reduce__(self):  # through the cluster's multiprocessing queues
        return ClaimedMessage, (int(self), self.claim)


class Acknowledgement(int):
    """The ack_id a worker hands back for a run that succeeded: the package's id carrying the success.

    django-q2's monitor passes it to the broker's acknowledge(), which records
    the success (tasks.engine.outcome.record_acknowledged_success): on the ORM
    broker in the statement that deletes the package. Redis packages have no
    id (0): the success is recorded alone. Always true, so the monitor, which
    acknowledges a truthy ack_id only, acknowledges it.
    """

    def __new__(cls, message_id: int | None, success: dict):
        instance = super().__new__(cls, message_id or 0)
        instance.success = success
        return instance

    def __bool__(self) -> bool:
        return True

    def __reduce__(self):
        return Acknowledgement, (int(self), self.success)


_brokers: dict[tuple, Broker] = {}


def dequeue_batch_size(bulk: int) -> int:
    """How many packages a dequeue may take: `bulk`, and in a cluster's pusher no more than its prefetch
    queue has room for (queue_limit minus what waits there), so a batch never deepens the prefetch a
    CRITICAL package cannot overtake: it stays queue_limit deep whatever `bulk` is. Both our brokers."""
    import multiprocessing

    process = multiprocessing.current_process()
    target = getattr(process, "_target", None)
    if bulk <= 1 or getattr(target, "__module__", "") != "django_q.pusher":
        return max(1, bulk)
    task_queue = (getattr(process, "_args", ()) or (None,))[0]
    limit = getattr(task_queue, "_maxsize", 0)
    if not limit or limit <= 0 or limit >= 2**31 - 1:
        return bulk
    try:
        room = limit - task_queue.qsize()
    except (NotImplementedError, OSError, ValueError):
        return 1
    return max(1, min(bulk, room))


def get_task_broker() -> Broker:
    """The broker the settings name now (read at call time), one instance per process and configuration."""
    now = conf.current()
    path = now.broker_class
    key = (path, now.queue_name, now.redis_url, now.redis_prefix)
    broker = _brokers.get(key)
    if broker is None:
        module, name = path.rsplit(".", 1)
        broker = getattr(importlib.import_module(module), name)(list_key=now.queue_name)
        _brokers[key] = broker
    return broker


def inserting_broker():
    """The broker when it can insert a run row with its package in one statement (the ORM broker), else None."""
    broker = get_task_broker()
    return broker if hasattr(broker, "inserting") else None


class Package(NamedTuple):
    """A signed package with the hints a broker files it by (package_hints reads them back from the payload)."""

    payload: str
    priority: int
    eta: float | None
    lease: int
    run_id: str
    tenant_key: int


def run_package(run_id, *, eta: dt.datetime | None, priority: int, timeout: int,
                tenant_id: int | None = None) -> Package:
    """The signed package of a run, with its hints (no need for a broker to decode it again)."""
    kwargs = {"_priority": int(priority), "_lease": int(timeout) + conf.lease_grace()}
    if eta is not None and eta > timezone.now():
        kwargs["_eta"] = eta.timestamp()
    # The package django-q2's async_task builds for these options, built here: async_task spends half its
    # time (a humanised uuid, its option loop, log lines formatted whatever the level) on what a run has.
    task = {
        "id": uuid.uuid4().hex, "name": f"run {run_id}", "func": RUN_FUNC, "args": (str(run_id),),
        "timeout": int(timeout), "ack_failure": True, "save": False, "sync": False, "kwargs": kwargs,
        "started": timezone.now(), TENANT_KEY: int(tenant_id or 0),  # whose turn it is, for the broker
    }
    pre_enqueue.send(sender="django_q", task=task)
    return Package(SignedPackage.dumps(task), kwargs["_priority"], kwargs.get("_eta"), kwargs["_lease"],
                   str(run_id), int(tenant_id or 0))


def enqueue_run(run_id, *, eta: dt.datetime | None, priority: int, timeout: int, tenant_id: int | None = None,
                insert_run: TaskRun | None = None) -> None:
    """Hand a run to the broker. Only after commit, so a worker never reads an uncommitted row.

    With `insert_run` (ORM broker, no open transaction) the run row is inserted by the same statement.
    """
    package = run_package(run_id, eta=eta, priority=priority, timeout=timeout, tenant_id=tenant_id)
    broker = get_task_broker()
    if insert_run is not None:
        broker.inserting(insert_run, priority=package.priority, eta=package.eta,
                         lease=package.lease).enqueue(package.payload)
    elif hasattr(broker, "enqueue_packages"):
        broker.enqueue_packages([package])
    else:
        broker.enqueue(package.payload)


def enqueue_runs(runs: Iterable[tuple]) -> int:
    """Hand many committed runs to the broker at once: (run_id, eta, priority, timeout, tenant_id) each.

    Our brokers take them together (one INSERT of the packages, one Redis pipeline): a batch of 10,000
    runs is one round trip to the broker, not 10,000.
    """
    packages = [run_package(run_id, eta=eta, priority=priority, timeout=timeout, tenant_id=tenant_id)
                for run_id, eta, priority, timeout, tenant_id in runs]
    if not packages:
        return 0
    broker = get_task_broker()
    if hasattr(broker, "enqueue_packages"):
        broker.enqueue_packages(packages)
    else:
        for package in packages:
            broker.enqueue(package.payload)
    return len(packages)
