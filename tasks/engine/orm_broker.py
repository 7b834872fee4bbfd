"""The PostgreSQL broker: one statement takes the most urgent packages, tenants in turn, and claims their runs.

Packages are rows of QueueMessage (`available_at` doubles as a delivery's
lock; an unacknowledged package comes back after its lease). The dequeue
claims the TaskRun a package carries in the same statement
(tasks.engine.claim), and acknowledging a run's package records its success
in the statement that deletes it (tasks.engine.outcome).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import select
import time
from datetime import UTC, datetime

from django import db
from django.db import transaction
from django.utils import timezone
from django_q.brokers import Broker

from core.db import prepared_cursor, raw_cursor, soft_write, transaction_pooling
from tasks import conf
from tasks.engine import acknowledgements
from tasks.engine.broker import Acknowledgement, ClaimedMessage, dequeue_batch_size, package_hints
from tasks.engine.outcome import record_acknowledged_success, record_successes
from tasks.engine.rows import insert_sql
from tasks.engine.sql import public_table
from tasks.models import Priority, QueueMessage

logger = logging.getLogger("tasks")

# The channel every insert of packages notifies (migration tasks 0011), the queue's name as the payload.
NOTIFY_CHANNEL = "courtside_tasks"
NOTIFY_TRIGGER = """
CREATE OR REPLACE FUNCTION "{schema}".courtside_queue_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('courtside_tasks', q.queue) FROM (SELECT DISTINCT queue FROM inserted) AS q;
    RETURN NULL;
END
$$;
CREATE TRIGGER queuemessage_notify AFTER INSERT ON "{schema}".tasks_queuemessage
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".courtside_queue_notify();
"""
NOTIFY_TRIGGER_DROP = """
DROP TRIGGER IF EXISTS queuemessage_notify ON "{schema}".tasks_queuemessage;
DROP FUNCTION IF EXISTS "{schema}".courtside_queue_notify();
"""


class QueueListener:
    """The pusher's wake-up: a connection of its own LISTENing on NOTIFY_CHANNEL for its queue's inserts.

    wait(timeout) returns as soon as a package for this queue is committed, or after `timeout` (delayed
    packages and expired leases send nothing: the poll still finds them). Only in a cluster's pusher;
    behind PgBouncer's transaction pooling (no LISTEN there), outside a pusher, or while the connection
    fails, it sleeps the poll, as the pusher did before.
    """

    def __init__(self, queue: str, alias: str):
        self.queue, self.alias, self.pid = queue, alias, os.getpid()
        self.connection = None
        self.retry_at = 0.0

    @staticmethod
    def in_pusher() -> bool:
        """Whether this process is a cluster's pusher (django-q2's pusher function is its target)."""
        import multiprocessing

        target = getattr(multiprocessing.current_process(), "_target", None)
        return getattr(target, "__module__", "") == "django_q.pusher"

    def _connect(self):
        if self.connection is not None or time.monotonic() < self.retry_at:
            return self.connection
        if transaction_pooling() or not self.in_pusher():
            self.retry_at = float("inf")  # elsewhere (a test, a bench calling dequeue) the poll, as before
            return None
        import psycopg

        try:
            params = db.connections[self.alias].get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            self.connection = psycopg.connect(**params, autocommit=True)
            self.connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except Exception:
            logger.warning("The task queue's LISTEN connection failed; polling instead", exc_info=True)
            self.close()
            self.retry_at = time.monotonic() + 30
        return self.connection

    def close(self):
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:
                pass
        self.connection = None

    def drain(self) -> bool:
        """Read the notifications that came, without waiting: whether one was for this queue."""
        connection = self.connection
        if connection is None:
            return False
        try:
            pgconn = connection.pgconn
            pgconn.consume_input()
            ours = False
            while (notification := pgconn.notifies()) is not None:
                ours = ours or notification.extra.decode() == self.queue
            return ours
        except Exception:
            logger.warning("The task queue's LISTEN connection broke; polling until it is back", exc_info=True)
            self.close()
            return False

    def wait(self, timeout: float) -> bool:
        """Until a package for this queue is committed (True) or `timeout` seconds have passed (False).

        True at once when the LISTEN has just begun (or begun again): a package committed between the
        caller's empty dequeue and the LISTEN sent its NOTIFY before anyone listened."""
        fresh = self.connection is None
        connection = self._connect()
        if connection is None:
            time.sleep(timeout)
            return False
        if fresh:
            # What was committed before LISTEN began notified nobody: look again before waiting.
            return True
        deadline = time.monotonic() + timeout
        while True:
            if self.drain():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or self.connection is None:
                return False
            try:
                select.select([connection.fileno()], [], [], left)
            except (OSError, ValueError):
                self.close()
                return False


class PriorityORMBroker(Broker):
    """PostgreSQL queue: one UPDATE ... FOR UPDATE SKIP LOCKED takes the most urgent packages, tenants in turn.

    The turn is this process's (the cluster's pusher): per priority, the tenant served last. Two clusters on
    one queue each keep their own; each still serves every tenant in turn.
    """

    def __init__(self, list_key: str | None = None):
        super().__init__(list_key=list_key or conf.queue_name())
        self._served_last = [-1] * len(Priority.values)  # per priority: the tenant key served last
        self._queue_listener: QueueListener | None = None

    def _listener(self) -> QueueListener:
        listener = self._queue_listener
        if listener is None or listener.pid != os.getpid():  # a forked process gets a connection of its own
            listener = self._queue_listener = QueueListener(self.list_key, self._alias())
        return listener

    @staticmethod
    def get_connection(list_key: str | None = None):
        return QueueMessage.objects

    def _alias(self) -> str:
        return conf.q_cluster().get("orm") or "default"

    def _fresh(self):
        # Outside a transaction, drop connections the database closed meanwhile (the pusher lives for days).
        if transaction.get_autocommit(using=self._alias()):
            db.close_old_connections()

    def enqueue(self, task: str):
        priority, eta, lease, run_id, tenant_key = package_hints(task)
        now = timezone.now()
        available = now if eta is None else max(now, datetime.fromtimestamp(eta, tz=UTC))
        with raw_cursor(self._alias()) as cursor:
            cursor.execute(
                f"INSERT INTO {public_table(QueueMessage)} "
                "(queue, priority, payload, available_at, lease_seconds, deliveries, run_id, tenant_key, created_at) "
                "VALUES (%s, %s, %s, %s, %s, 0, %s, %s, %s) RETURNING id",
                [self.list_key, priority, task, available, lease or int(conf.q_cluster().get("retry", 360)), run_id,
                 tenant_key, now],
            )
            return cursor.fetchone()[0]

    def enqueue_packages(self, packages) -> None:
        """Packages with their hints (tasks.engine.broker.Package) in one INSERT, however many: a batch's
        packages cost one statement, not one each (rows as arrays, so the statement's text stays the same)."""
        now = timezone.now()
        retry = int(conf.q_cluster().get("retry", 360))
        with raw_cursor(self._alias()) as cursor:
            cursor.execute(
                f"INSERT INTO {public_table(QueueMessage)} "
                "(queue, priority, payload, available_at, lease_seconds, deliveries, run_id, tenant_key, created_at) "
                "SELECT %s, p.priority, p.payload, p.available_at, p.lease_seconds, 0, p.run_id, p.tenant_key, %s "
                "FROM unnest(%s::smallint[], %s::text[], %s::timestamptz[], %s::integer[], %s::uuid[], %s::bigint[]) "
                "WITH ORDINALITY AS p(priority, payload, available_at, lease_seconds, run_id, tenant_key, ordinal) "
                "ORDER BY p.ordinal",
                [self.list_key, now, [p.priority for p in packages], [p.payload for p in packages],
                 [now if p.eta is None else max(now, datetime.fromtimestamp(p.eta, tz=UTC)) for p in packages],
                 [p.lease or retry for p in packages], [p.run_id for p in packages],
                 [p.tenant_key for p in packages]],
            )

    def dequeue(self):
        self._fresh()
        # Relaxed commit: a delivery lost in a server crash loses its claim with it (one WAL stream, and
        # everything the worker writes later comes after it), so the package is simply delivered again.
        cluster = conf.current()
        rows = soft_write(_dequeue_sql(), {"queue": self.list_key, "bulk": self._batch_size(cluster.bulk),
                                           "grace": cluster.lease_grace,
                                           "served_last": self._served_last},
                          alias=self._alias(), all_rows=True)
        if not rows:
            # Idle: wait for an enqueue's notification (or the poll, for delayed packages and expired leases).
            self._listener().wait(cluster.poll)
            return None
        self._listener().drain()  # notifications of what this batch took: keep the connection's socket clear
        # The turn's order (by tenant after the one served last, then by age) matters little once delivered;
        # the turn moves on to the last tenant served.
        rows.sort(key=lambda row: (-row[1], row[3] <= self._served_last[row[1]], row[3], row[0]))
        self._served_last[rows[-1][1]] = rows[-1][3]
        delivered_at, packages = time.time(), []
        for message_id, _priority, payload, _tenant_key, claimed in rows:
            if claimed is None:  # a plain package, or a run that could not be claimed: the worker decides
                packages.append((message_id, payload))
                continue
            # Two packages of one run in one batch claim it once: the second finds it running.
            claimed = json.loads(claimed) if isinstance(claimed, str) else claimed  # jsonb comes as text here
            claim = {"values": claimed, "claimed_at": datetime.fromtimestamp(claimed.pop("claimed_at"), tz=UTC),
                     "delivered_at": delivered_at}
            packages.append((ClaimedMessage(message_id, claim), payload))
        return packages

    _batch_size = staticmethod(dequeue_batch_size)

    def acknowledge(self, task_id):
        """django-q2's monitor, done with a package: a run's success is recorded as its package is deleted."""
        if isinstance(task_id, Acknowledgement):
            # In the cluster's monitor: held while more results wait, then recorded with them
            # (tasks.engine.acknowledgements). Elsewhere, or for one alone: one statement, the run
            # succeeded and its package deleted.
            if not acknowledgements.hold(self, task_id):
                self._fresh()
                record_acknowledged_success(task_id)
            return
        self.delete(task_id)

    def acknowledge_batch(self, acks) -> int:
        """Record the successes of a batch of acknowledgements, their packages deleted: one statement."""
        self._fresh()
        return record_successes(list(acks))

    def inserting(self, run, *, priority: int, eta: float | None, lease: int) -> RunInsertingBroker:
        """This broker, inserting `run`'s row in the statement that enqueues its package."""
        return RunInsertingBroker(self, run, priority=priority, eta=eta, lease=lease)

    def fail(self, task_id):
        self.delete(task_id)

    def delete(self, task_id):
        with raw_cursor(self._alias()) as cursor:
            cursor.execute(f"DELETE FROM {public_table(QueueMessage)} WHERE id = %s", [int(task_id)])

    def queue_size(self) -> int:
        return QueueMessage.objects.using(self._alias()).filter(
            queue=self.list_key, available_at__lte=timezone.now()
        ).count()

    def lock_size(self) -> int:
        return QueueMessage.objects.using(self._alias()).filter(
            queue=self.list_key, available_at__gt=timezone.now(), deliveries__gt=0
        ).count()

    def delayed_size(self) -> int:
        return QueueMessage.objects.using(self._alias()).filter(
            queue=self.list_key, available_at__gt=timezone.now(), deliveries=0
        ).count()

    def purge_queue(self):
        return QueueMessage.objects.using(self._alias()).filter(queue=self.list_key).delete()

    def delete_queue(self):
        return self.purge_queue()

    def ping(self) -> bool:
        return True

    def info(self) -> str:
        if not self._info:
            self._info = f"Courtside priority ORM ({self._alias()})"
        return self._info


# Takes due packages of the most urgent priority that has any, the next tenants' in turn: the oldest
# packages of the tenants after the one served last at that priority (%(served_last)s, per priority), then
# from the first tenant again, `bulk` at most (with bulk 1: one package, the next tenant's oldest). Each
# branch walks queuemessage_fair_dispatch (queue, priority, tenant_key, id) from where it starts and stops
# at `bulk` rows; the second is read only when the first ran short. It claims the queued runs the packages
# carry (courtside_claim_run, migrations tasks 0004/0005: tasks.engine.claim, from the rule
# written there once): the run becomes `claimed`, its attempt counted, its lease set. Not called for a plain package.
_DEQUEUE = """
WITH top AS (
    SELECT priority FROM {queue}
    WHERE queue = %(queue)s AND available_at <= now()
    ORDER BY priority DESC
    LIMIT 1
), later_tenants AS (
    SELECT m.id FROM {queue} m, top
    WHERE m.queue = %(queue)s AND m.priority = top.priority AND m.available_at <= now()
        AND m.tenant_key > (%(served_last)s::bigint[])[top.priority + 1]
    ORDER BY m.tenant_key, m.id
    LIMIT %(bulk)s
    FOR UPDATE OF m SKIP LOCKED
), first_tenants AS (
    SELECT m.id FROM {queue} m, top
    WHERE m.queue = %(queue)s AND m.priority = top.priority AND m.available_at <= now()
        AND m.tenant_key <= (%(served_last)s::bigint[])[top.priority + 1]
    ORDER BY m.tenant_key, m.id
    LIMIT %(bulk)s
    FOR UPDATE OF m SKIP LOCKED
), picked AS (
    SELECT id FROM later_tenants
    UNION ALL
    SELECT id FROM first_tenants
    LIMIT %(bulk)s
)
UPDATE {queue} AS m
SET available_at = now() + make_interval(secs => m.lease_seconds), deliveries = m.deliveries + 1
FROM picked
WHERE m.id = picked.id
RETURNING m.id, m.priority, m.payload, m.tenant_key, {schema}.courtside_claim_run(m.run_id, %(grace)s)
"""


@functools.cache
def _dequeue_sql() -> str:
    from django_tenants.utils import get_public_schema_name

    return _DEQUEUE.format(queue=public_table(QueueMessage), schema=f'"{get_public_schema_name()}"')


_insert_statements: dict[tuple[type, str], tuple[str, list]] = {}


class RunInsertingBroker:
    """Enqueue through the ORM broker while inserting a new TaskRun row in the same SQL statement.

    Submitting then costs one round trip, like a plain `async_task`, and the
    run and its package are committed together.
    """

    def __init__(self, broker: PriorityORMBroker, run, *, priority: int, eta: float | None, lease: int):
        # The hints are the ones enqueue_run put in the package: no need to decode it again.
        self.broker, self.run, self.list_key = broker, run, broker.list_key
        self.priority, self.eta, self.lease = priority, eta, lease

    def enqueue(self, task: str):
        alias = self.broker._alias()
        insert_run, run_params = insert_sql(self.run, alias)
        priority, eta, lease = self.priority, self.eta, self.lease
        now = timezone.now()
        available = now if eta is None else max(now, datetime.fromtimestamp(eta, tz=UTC))
        table = public_table(QueueMessage)
        with prepared_cursor(alias) as cursor:
            cursor.execute(
                f"WITH inserted_run AS ({insert_run} RETURNING id) "
                f"INSERT INTO {table} "
                "(queue, priority, payload, available_at, lease_seconds, deliveries, run_id, tenant_key, created_at) "
                "SELECT %s, %s, %s, %s, %s, 0, id, %s, %s FROM inserted_run RETURNING id",
                [*run_params, self.list_key, priority, task, available,
                 lease or int(conf.q_cluster().get("retry", 360)), self.run.tenant_id or 0, now],
                prepare=True,
            )
            return cursor.fetchone()[0]
