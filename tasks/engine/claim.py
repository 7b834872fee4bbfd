"""The claim: how a delivery takes a run for one attempt. The rule is written here once.

A run may be claimed when it is queued or retrying, no cancel was asked, and
its backoff has ended (a package may come EARLY_TOLERANCE early: the broker's
clock against ours). A claim counts the attempt, leases the run for its
timeout plus the lease grace, and clears the backoff. Three places claim, all
from the text below:

- the ORM broker's dequeue, in the statement that takes the package: the
  PL/pgSQL function `courtside_claim_run` (claim_function_sql, created by
  migration tasks 0008 from this text); the run becomes `claimed`;
- a worker given a package without a claim (Redis, a plain redelivery):
  FAST_CLAIM, one UPDATE; the run becomes `running`;
- anything unusual (a run whose lease ran out, an early retry package):
  claim_slow, under a row lock, in Python with the same constants.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid

from django.db import connection, transaction
from django.utils import timezone

from core.db import soft_write
from tasks import conf
from tasks.engine.broker import enqueue_run
from tasks.engine.outcome import finish, record_lost_attempt
from tasks.engine.sql import CLAIMED, claimed_attnames, render
from tasks.models import LEASED, TERMINAL, Status, TaskAttempt, TaskRun

# A retry's package may arrive this much before its backoff ends (the broker's clock against ours).
EARLY_TOLERANCE = dt.timedelta(seconds=1)
CLAIMABLE_STATUSES = (Status.QUEUED, Status.RETRYING)

# The rule, as SQL over the run table's columns; {due_by}: now plus EARLY_TOLERANCE.
CLAIMABLE = (f"status IN ({', '.join(repr(str(s)) for s in CLAIMABLE_STATUSES)}) AND NOT cancel_requested "
             "AND (next_attempt_at IS NULL OR next_attempt_at <= {due_by})")
# A lease from {now}: the run's timeout plus {grace} seconds.
LEASE = "{now} + make_interval(secs => timeout + {grace})"
# What every claim writes.
CLAIM_SET = "attempts = attempts + 1, lease_until = " + LEASE + ", next_attempt_at = NULL"


def backoff_over(next_attempt_at, *, now) -> bool:
    """The rule's last clause in Python (claim_slow)."""
    return next_attempt_at is None or next_attempt_at <= now + EARLY_TOLERANCE


def lease_from(now: dt.datetime, timeout: int) -> dt.datetime:
    """LEASE in Python."""
    return now + dt.timedelta(seconds=timeout + conf.lease_grace())


# A worker's claim of a package that carries none: the run is running from now.
_FAST_CLAIM = f"""
UPDATE {{run}} SET status = 'running', {CLAIM_SET.format(now="%(now)s", grace="%(grace)s")},
    started_at = COALESCE(started_at, %(now)s), worker_pid = %(pid)s, updated_at = %(now)s
WHERE id = %(id)s AND {CLAIMABLE.format(due_by="%(due_by)s")}
RETURNING {{claimed_columns}}
"""

# The dequeue's claim, as a PL/pgSQL function called in the dequeue's RETURNING (tasks.engine.orm_broker):
# a STRICT function is not called for a package without a run (a plain async_task), so such packages cost the
# dequeue nothing; PL/pgSQL keeps the UPDATE's plan for the session, planned with sequential scans off (a plan
# made while the table was empty would scan it once full). The run becomes `claimed` (shown as queued), its
# start unwritten and its worker unknown until a worker starts it. It returns the CLAIMED columns as jsonb.
CLAIM_FUNCTION = """
CREATE OR REPLACE FUNCTION "{schema}".courtside_claim_run(claimed_run uuid, lease_grace integer)
RETURNS jsonb
LANGUAGE plpgsql STRICT VOLATILE
SET enable_seqscan = off
AS $$
DECLARE
    claim jsonb;
BEGIN
    UPDATE "{schema}".tasks_taskrun AS r
    SET status = 'claimed', %(claim_set)s, worker_pid = NULL, updated_at = now()
    WHERE r.id = claimed_run AND %(claimable)s
    RETURNING jsonb_build_object(%(columns)s, 'claimed_at', extract(epoch FROM now()))
    INTO claim;
    RETURN claim;
END
$$
"""


def claim_function_sql(schema: str) -> str:
    """The CREATE OR REPLACE of courtside_claim_run in `schema`, from the rule above (migration tasks 0008)."""
    early = f"now() + interval '{EARLY_TOLERANCE.total_seconds():g} second'"
    body = CLAIM_FUNCTION % {
        "claim_set": CLAIM_SET.format(now="now()", grace="lease_grace"),
        "claimable": CLAIMABLE.format(due_by=early),
        "columns": ", ".join(f"'{name}', r.{name}" for name in CLAIMED),
    }
    return body.replace("{schema}", schema)


# A claim made by the dequeue whose package then waited for a worker: still ours? Renew its lease (and the
# package's), record this worker, and say whether a cancel came meanwhile. Unless one did, the task starts
# now: the run is running, and its start is written if no earlier attempt wrote it.
RENEW_CLAIM = """
WITH renewed AS (
    UPDATE {run} SET lease_until = {lease}, worker_pid = %(pid)s,
        status = CASE WHEN cancel_requested THEN status ELSE 'running' END,
        started_at = CASE WHEN cancel_requested THEN started_at ELSE COALESCE(started_at, now()) END,
        updated_at = now()
    WHERE id = %(id)s AND status = 'claimed' AND attempts = %(number)s
    RETURNING cancel_requested
), package AS (
    UPDATE {queue} SET available_at = now() + make_interval(secs => lease_seconds)
    WHERE id = %(ack_id)s AND EXISTS (SELECT 1 FROM renewed)
)
SELECT cancel_requested, now() FROM renewed
""".replace("{lease}", LEASE.format(now="now()", grace="%(grace)s"))


# The task of a run the dequeue claimed has been running a moment (the watchdog thread says so, or its first
# progress report): the run is running now, started when its function started. Never after its outcome.
_MARK_STARTED = """
UPDATE {run} SET status = 'running', started_at = COALESCE(started_at, %(started)s), worker_pid = %(pid)s,
    updated_at = now()
WHERE id = %(id)s AND status = 'claimed' AND attempts = %(number)s
"""


_MARK_STARTED_TYPES = {"started": "timestamptz", "pid": "integer", "id": "uuid", "number": "integer"}


def claim_slow(run_id) -> tuple[TaskRun | None, TaskAttempt | None, str]:
    """Take the run for this worker, or say why not. One row lock decides between duplicate deliveries."""
    now = timezone.now()
    with transaction.atomic():
        run = TaskRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return None, None, "missing"
        if run.status in TERMINAL or run.status == Status.WAITING:
            return run, None, "not runnable"
        if run.status in LEASED:
            if run.lease_until and run.lease_until > now:
                # Another worker holds it (a redelivery raced a slow start): look again when its lease ends.
                transaction.on_commit(lambda: enqueue_run(run.pk, eta=run.lease_until + dt.timedelta(seconds=1),
                                                       priority=run.priority, timeout=run.timeout,
                                                       tenant_id=run.tenant_id))
                return run, None, "deferred"
            # The previous attempt's worker died (SIGKILL, OOM, the guard's kill of a task stuck in C code).
            record_lost_attempt(run, now=now)
            run.lost_attempts += 1
            if run.lost_attempts >= conf.MAX_LOST_ATTEMPTS:
                finish(run, status=Status.FAILED, now=now,
                        error=f"The worker died {run.lost_attempts} times running this task; given up.")
                return run, None, "given up"
        if run.cancel_requested:
            finish(run, status=Status.CANCELLED, now=now, error="Cancelled before it started.")
            return run, None, "cancelled"
        if run.status == Status.RETRYING and not backoff_over(run.next_attempt_at, now=now):
            # An older package of this run (redelivered after a hard timeout) came before the retry's own
            # package is due: look again when it is due, never start the retry before its backoff.
            due = run.next_attempt_at
            transaction.on_commit(lambda: enqueue_run(run.pk, eta=due, priority=run.priority, timeout=run.timeout,
                                                   tenant_id=run.tenant_id))
            return run, None, "not due"
        run.attempts += 1
        run.status = Status.RUNNING
        run.started_at = run.started_at or now
        run.lease_until = lease_from(now, run.timeout)
        run.worker_pid = os.getpid()
        run.next_attempt_at = None
        run.save(update_fields=["attempts", "lost_attempts", "status", "started_at", "lease_until", "worker_pid",
                                "next_attempt_at", "updated_at"])
        attempt = TaskAttempt(run=run, number=run.attempts, worker_pid=run.worker_pid, started_at=now,
                              schema_name=getattr(connection, "schema_name", "public"))
    return run, attempt, "claimed"


def run_from_claim(values) -> TaskRun:
    """A claimed run from the claim's columns (a row, in claimed_attnames() order, or a dict by name)."""
    names = claimed_attnames()
    if isinstance(values, dict):  # the dequeue's claim, through JSON
        values = [uuid.UUID(values["id"]) if name == "id" else values[name] for name in names]
    values = list(values)
    arguments_at = names.index("arguments")
    if isinstance(values[arguments_at], str):  # Django's psycopg setup hands jsonb back as text
        values[arguments_at] = json.loads(values[arguments_at])
    # As Django builds a row it read (3x cheaper than TaskRun(**...)); other fields are deferred, so
    # reading one loads it rather than giving a default. A later save(update_fields=...) UPDATEs the row.
    return TaskRun.from_db("default", names, values)


def fast_claim(run_id) -> tuple[TaskRun, TaskAttempt] | None:
    """The common case in one statement: a queued run, not cancelled, becomes running with a new attempt."""
    now = timezone.now()
    # Relaxed commit: a server crash that loses this claim loses everything after it too (one WAL
    # stream), the success and its acknowledgement included, so the package is delivered and claimed again.
    row = soft_write(render(_FAST_CLAIM), {"now": now, "grace": conf.lease_grace(), "pid": os.getpid(),
                                         "id": str(run_id), "due_by": now + EARLY_TOLERANCE},
                     prepared={"now": "timestamptz", "grace": "integer", "pid": "integer", "id": "uuid",
                               "due_by": "timestamptz"})
    if row is None:
        return None
    run = run_from_claim(row)
    # The attempt's row is written when it ends (one INSERT instead of an INSERT now and an UPDATE then).
    attempt = TaskAttempt(run_id=run.pk, number=run.attempts, started_at=now, worker_pid=os.getpid(),
                          schema_name="public")
    return run, attempt


def run_mark_started(*, run_id, attempt: int, started_at: dt.datetime, worker_pid: int) -> None:
    """A claimed run's task has started (the worker's watchdog thread calls this once it has run a moment)."""
    # Relaxed commit: a lost mark only leaves the run reading `queued` until its outcome writes the start.
    soft_write(render(_MARK_STARTED), {"started": started_at, "pid": worker_pid, "id": str(run_id), "number": attempt},
               prepared=_MARK_STARTED_TYPES)
