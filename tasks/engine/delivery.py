"""The package a cluster worker runs now: the claim it carries in, the acknowledgement it carries out.

Set by the django-q2 signal receivers in tasks.signals (pre_execute gives the
worker's task dict; post_execute_in_worker ends the delivery) and used by
tasks.engine.execution.

In: on the ORM broker the dequeue claims the run in the statement that takes
its package (tasks.engine.broker.ClaimedMessage), so the worker starts the
task without a statement of its own. A package that waited for a free worker
longer than fresh_claim_seconds() renews its claim first (and sees a cancel
that came meanwhile): take_dequeue_claim.

Out: a success is not written by the worker. run_execute puts it into the
task's `ack_id` (acknowledge_with: an Acknowledgement carrying the success),
django-q2's monitor hands that to the broker's acknowledge(), and the broker
records the success there (on the ORM broker in the statement that deletes
the package). Per task the cluster so makes the round trips plain django-q2
makes: the pusher's dequeue and the monitor's acknowledgement. A run whose
execution raised before its outcome was recorded is not acknowledged at all
(withhold_acknowledgement): its package comes back after its lease.

A crash of the monitor before it recorded the success leaves the run
`running` with its package unacknowledged: the package comes back after its
lease, the claim records the attempt as lost and the task runs again (side
effects that must happen once use effect_once). The relaxed commit of the
success is safe for the same reason: it loses the success and the
acknowledgement together.
"""

from __future__ import annotations

import os
import time

from django.db import transaction
from django.utils import timezone

from core.db import soft_write
from tasks import conf
from tasks.engine import workers
from tasks.engine.broker import RUN_FUNC, Acknowledgement, ClaimedMessage, get_task_broker
from tasks.engine.claim import RENEW_CLAIM, run_from_claim
from tasks.engine.outcome import finish
from tasks.engine.sql import render
from tasks.models import Status, TaskAttempt, TaskRun


class Delivery:
    """What this worker process knows of the package it executes (one at a time)."""

    task: dict | None = None  # django-q2's task dict of the run's package being executed, else None
    run_id: str | None = None
    ack_id: int | None = None  # the ORM package's id
    claim: dict | None = None
    handed: bool = False  # its success went into the acknowledgement

    @classmethod
    def begin(cls, *, task: dict) -> None:
        args = task.get("args") or ()
        run_id = str(args[0]) if args and task.get("func") == RUN_FUNC else None
        ack_id = task.get("ack_id")
        ours = isinstance(ack_id, int) and hasattr(get_task_broker(), "inserting")  # the ORM broker's package
        cls.task, cls.run_id = (task, run_id) if run_id is not None else (None, None)
        cls.ack_id = int(ack_id) if ours else None
        cls.claim = ack_id.claim if isinstance(ack_id, ClaimedMessage) else None  # either broker's dequeue
        cls.handed = False
        workers.note_started(run_id)  # in memory: the next heartbeat says what this worker runs

    @staticmethod
    def fresh_claim_seconds() -> float:
        """How long a dequeue's claim may wait for a worker and still cover the whole attempt.

        Its lease is the timeout plus the lease grace from the dequeue; the
        attempt may last the timeout plus 3 s (django-q2's guard kills the
        worker then). 1 s with the default grace of 10 s; 0 (always renew) when
        the grace leaves no room.
        """
        return max(0.0, min(1.0, (conf.lease_grace() - 3) / 2))

    @classmethod
    def take_claim(cls, run_id) -> dict | None:
        """The dequeue's claim of this run, once."""
        claim, cls.claim = cls.claim, None
        if claim is None or claim["values"]["id"] != str(run_id):
            return None
        return claim

    @classmethod
    def acknowledges(cls, run_id) -> bool:
        """Whether this run's success goes with the package's acknowledgement: it is the run being delivered."""
        return cls.task is not None and cls.run_id == str(run_id) and not cls.handed

    @classmethod
    def acknowledge_with(cls, success: dict) -> None:
        """Hand the success to django-q2's monitor as the package's ack_id; the broker's acknowledge records it."""
        cls.task["ack_id"] = Acknowledgement(cls.ack_id, success)
        cls.handed = True

    @classmethod
    def withhold_acknowledgement(cls) -> None:
        """The run's execution raised before its outcome was recorded: the package must come back."""
        if cls.task is not None:
            cls.task.pop("ack_id", None)

    @classmethod
    def end(cls) -> None:
        workers.note_finished()
        cls.task, cls.run_id, cls.ack_id, cls.claim, cls.handed = None, None, None, None, False


def take_dequeue_claim(claim: dict) -> tuple[TaskRun | None, TaskAttempt | None, str]:
    """Start from the claim the dequeue made; renew it first if its package waited for a worker."""
    run = run_from_claim(claim["values"])
    run.worker_pid = os.getpid()
    started = None  # the run stays `claimed` (queued) until its function starts: run_execute notes when
    if time.time() - claim["delivered_at"] > Delivery.fresh_claim_seconds():
        row = soft_write(render(RENEW_CLAIM), {"grace": conf.lease_grace(), "pid": run.worker_pid, "id": str(run.pk),
                                              "number": run.attempts, "ack_id": Delivery.ack_id},
                         prepared={"grace": "integer", "pid": "integer", "id": "uuid", "number": "integer",
                                   "ack_id": "bigint"})
        if row is None:
            return run, None, "superseded"  # the lease ran out while waiting and another delivery took it over
        cancel_requested, started = row
        if cancel_requested:
            with transaction.atomic():
                locked = TaskRun.objects.select_for_update().get(pk=run.pk)
                if locked.status == Status.CLAIMED and locked.attempts == run.attempts:
                    locked.attempts -= 1  # this attempt never started
                    finish(locked, status=Status.CANCELLED, now=timezone.now(), error="Cancelled before it started.",
                            also=["attempts"])
            return run, None, "cancelled"
        run.status = Status.RUNNING
    attempt = TaskAttempt(run_id=run.pk, number=run.attempts, started_at=started, worker_pid=run.worker_pid,
                          schema_name="public")
    return run, attempt, "claimed"
