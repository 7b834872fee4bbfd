"""Priority brokers for django-q2: strict CRITICAL > HIGH > NORMAL > LOW dispatch, delays, leases.

django-q2 1.11's ORM broker dequeues in no order and its Redis broker keeps one
FIFO list. Ours read the priority, the not-before time and the lease from the
signed package itself (the `_priority`, `_eta` and `_lease` keyword arguments
our services add), so a plain `async_task` through them still works: NORMAL,
now, the cluster's retry time.

Starvation: dispatch is strict. Under a constant CRITICAL stream that keeps
every worker busy, LOW work waits for as long as the stream lasts; nothing ages
it upwards. Use priorities for urgency, not for volume.
"""

from __future__ import annotations

import functools
import json
import operator
import time
from datetime import UTC, datetime, timedelta

from django import db
from django.db import models, transaction
from django.utils import timezone
from django_q.brokers import Broker
from django_q.signing import BadSignature, SignedPackage

from backoffice.db import prepared_cursor, raw_cursor, soft_write
from tasks import conf
from tasks.models import Priority, QueueMessage


def public_table(model) -> str:
    """A public-schema table, schema-qualified: right whatever search_path the connection was left with."""
    from django_tenants.utils import get_public_schema_name

    return f'"{get_public_schema_name()}"."{model._meta.db_table}"'




RUN_FUNC = "tasks.runner.execute"


def package_hints(payload: str) -> tuple[int, float | None, int | None, str | None]:
    """(priority, eta as a unix time or None, lease seconds or None, the TaskRun id or None) of a signed package."""
    try:
        task = SignedPackage.loads(payload)
    except (BadSignature, TypeError, ValueError):
        return Priority.NORMAL, None, None, None
    kwargs = task.get("kwargs") or {}
    priority = kwargs.get("_priority", Priority.NORMAL)
    if priority not in Priority.values:
        priority = Priority.NORMAL
    lease = kwargs.get("_lease")
    if lease is None and task.get("timeout"):
        lease = int(task["timeout"]) + conf.lease_grace()
    args = task.get("args") or ()
    run_id = str(args[0]) if task.get("func") == RUN_FUNC and args else None
    return priority, kwargs.get("_eta"), lease, run_id


class ClaimedMessage(int):
    """The id of an ORM package (django-q2's ack_id) that also carries the claim of its TaskRun.

    The dequeue claims the run in the statement that takes its package; the
    claim travels to the worker as the package's ack_id (the only value the
    pusher passes through untouched), and the worker runs the task without a
    statement of its own. As an int it still works wherever django-q2 uses the
    ack_id. A package whose run could not be claimed (cancelled, running
    elsewhere, gone) has a plain id: the worker's services.run_execute decides.
    """

    def __new__(cls, message_id: int, claim: dict):
        instance = super().__new__(cls, message_id)
        instance.claim = claim
        return instance

    def __reduce__(self):  # through the cluster's multiprocessing queues
        return ClaimedMessage, (int(self), self.claim)


class PriorityORMBroker(Broker):
    """PostgreSQL queue: one UPDATE ... FOR UPDATE SKIP LOCKED takes the most urgent, oldest packages."""

    def __init__(self, list_key: str | None = None):
        super().__init__(list_key=list_key or conf.queue_name())

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
        priority, eta, lease, run_id = package_hints(task)
        now = timezone.now()
        available = now if eta is None else max(now, datetime.fromtimestamp(eta, tz=UTC))
        with raw_cursor(self._alias()) as cursor:
            cursor.execute(
                f"INSERT INTO {public_table(QueueMessage)} "
                "(queue, priority, payload, available_at, lease_seconds, deliveries, run_id, created_at) "
                "VALUES (%s, %s, %s, %s, %s, 0, %s, %s) RETURNING id",
                [self.list_key, priority, task, available, lease or int(conf.q_cluster().get("retry", 360)), run_id,
                 now],
            )
            return cursor.fetchone()[0]

    def dequeue(self):
        self._fresh()
        # Relaxed commit: a delivery lost in a server crash loses its claim with it (one WAL stream, and
        # everything the worker writes later comes after it), so the package is simply delivered again.
        rows = soft_write(_dequeue_sql(), {"queue": self.list_key, "bulk": conf.bulk(), "grace": conf.lease_grace()},
                          alias=self._alias(), all_rows=True)
        if not rows:
            time.sleep(conf.poll())
            return None
        rows.sort(key=lambda row: (-row[1], row[0]))
        delivered_at, packages = time.time(), []
        for message_id, _priority, payload, claimed in rows:
            if claimed is None:  # a plain package, or a run that could not be claimed: the worker decides
                packages.append((message_id, payload))
                continue
            # Two packages of one run in one batch claim it once: the second finds it running.
            claimed = json.loads(claimed) if isinstance(claimed, str) else claimed  # jsonb comes as text here
            claim = {"values": claimed, "claimed_at": datetime.fromtimestamp(claimed.pop("claimed_at"), tz=UTC),
                     "delivered_at": delivered_at}
            packages.append((ClaimedMessage(message_id, claim), payload))
        return packages

    def acknowledge(self, task_id):
        self.delete(task_id)

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


# Takes the most urgent, oldest due packages and claims the queued runs they carry (courtside_claim_run,
# migration tasks 0004: the UPDATE services._FAST_CLAIM makes in a worker): the run becomes `running`, its
# attempt counted, its lease set. For a package without a run (a plain async_task) the function is not called.
_DEQUEUE = """
UPDATE {queue} AS m
SET available_at = now() + make_interval(secs => m.lease_seconds), deliveries = m.deliveries + 1
FROM (
    SELECT id FROM {queue}
    WHERE queue = %(queue)s AND available_at <= now()
    ORDER BY priority DESC, id
    LIMIT %(bulk)s
    FOR UPDATE SKIP LOCKED
) AS picked
WHERE m.id = picked.id
RETURNING m.id, m.priority, m.payload, {schema}.courtside_claim_run(m.run_id, %(grace)s)
"""


@functools.cache
def _dequeue_sql() -> str:
    from django_tenants.utils import get_public_schema_name

    return _DEQUEUE.format(queue=public_table(QueueMessage), schema=f'"{get_public_schema_name()}"')


_insert_statements: dict[tuple[type, str], tuple[str, list]] = {}


def _insert_sql(run, alias: str) -> tuple[str, list]:
    """The INSERT of a new TaskRun (defaults, auto_now) with the table named in full, and its parameters.

    The statement depends only on the model, so it is built once; Django's SQL
    compiler took a third of a submission's Python time. So is how each value
    is prepared: Django's per-field get_db_prep_save took another sixth, and on
    PostgreSQL it hands psycopg most values unchanged (strings, floats,
    booleans, UUIDs, aware datetimes) and integers typed as their column. The
    fields it does more for (JSON, the auto_now times it stamps, a foreign key
    to a UUID) keep Django's own code. tests/tasks/test_services.py reads a
    row written so back and compares it with the run task_submit returned.
    """
    from django.db import connections

    model = run.__class__
    cached = _insert_statements.get((model, alias))
    if cached is None:
        connection = connections[alias]
        fields = [f for f in model._meta.local_concrete_fields if not f.generated]
        quote = connection.ops.quote_name
        statement = (f"INSERT INTO {public_table(model)} ({', '.join(quote(f.column) for f in fields)}) "
                     f"VALUES ({', '.join(['%s'] * len(fields))})")
        passthrough = (models.CharField, models.TextField, models.FloatField, models.BooleanField, models.UUIDField)
        preparers = []
        for field in fields:
            if isinstance(field, models.DateTimeField) and (field.auto_now or field.auto_now_add):
                preparers.append(functools.partial(_prepare_by_field, field, connection))
            elif isinstance(field, models.IntegerField) or (
                    isinstance(field, models.ForeignKey) and isinstance(field.target_field, models.IntegerField)):
                # Typed as the column (Django's Int2/Int4/Int8), so a prepared INSERT keeps one plan.
                column_field = field.target_field if isinstance(field, models.ForeignKey) else field
                preparers.append(functools.partial(_prepare_integer, field.attname, column_field.get_internal_type(),
                                                   connection))
            elif isinstance(field, passthrough) and not isinstance(field, models.JSONField):
                preparers.append(operator.attrgetter(field.attname))
            elif isinstance(field, models.DateTimeField):
                preparers.append(functools.partial(_prepare_datetime, field))
            else:
                preparers.append(functools.partial(_prepare_by_field, field, connection))
        cached = _insert_statements[(model, alias)] = (statement, preparers)
    statement, preparers = cached
    return statement, [prepare(run) for prepare in preparers]


def _prepare_by_field(field, connection, run):
    return field.get_db_prep_save(field.pre_save(run, True), connection=connection)


def _prepare_integer(attname, internal_type, connection, run):
    value = getattr(run, attname)
    if value is None or internal_type not in connection.ops.integerfield_type_map:
        return value  # as Django passes an auto field's value (a foreign key to one)
    return connection.ops.adapt_integerfield_value(int(value), internal_type)


def _prepare_datetime(field, run):
    value = getattr(run, field.attname)
    if value is not None and timezone.is_naive(value):
        raise ValueError(f"{field.name} must be an aware datetime.")
    return value


def insert_run_row(run, alias: str = "default") -> None:
    """Insert a new TaskRun in one round trip (no SET search_path first), planned once per connection."""
    statement, params = _insert_sql(run, alias)
    with prepared_cursor(alias) as cursor:
        cursor.execute(statement, params, prepare=True)


def insert_run_rows(runs: list, alias: str = "default") -> None:
    """Insert many new TaskRuns with one COPY (a batch submission), values prepared as for one.

    A multi-row INSERT of 1,200 runs spent a second being split and parsed (43,000 placeholders); COPY
    sends the rows as data. Row triggers fire for COPY as for INSERT.
    """
    if not runs:
        return
    from django.db import connections

    statement, _params = _insert_sql(runs[0], alias)
    columns = statement[statement.index("(") + 1:statement.index(")")]
    connection = connections[alias]
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor:
        with cursor.copy(f"COPY {public_table(runs[0].__class__)} ({columns}) FROM STDIN") as copy:
            for run in runs:
                copy.write_row(_insert_sql(run, alias)[1])
    for run in runs:
        run._state.adding = False


class RunInsertingBroker:
    """Enqueue through the ORM broker while inserting a new TaskRun row in the same SQL statement.

    Submitting then costs one round trip, like a plain `async_task`, and the
    run and its package are committed together.
    """

    def __init__(self, broker: PriorityORMBroker, run, *, priority: int, eta: float | None, lease: int):
        # The hints are the ones _enqueue put in the package: no need to decode it again.
        self.broker, self.run, self.list_key = broker, run, broker.list_key
        self.priority, self.eta, self.lease = priority, eta, lease

    def enqueue(self, task: str):
        alias = self.broker._alias()
        insert_run, run_params = _insert_sql(self.run, alias)
        priority, eta, lease = self.priority, self.eta, self.lease
        now = timezone.now()
        available = now if eta is None else max(now, datetime.fromtimestamp(eta, tz=UTC))
        table = public_table(QueueMessage)
        with prepared_cursor(alias) as cursor:
            cursor.execute(
                f"WITH inserted_run AS ({insert_run} RETURNING id) "
                f"INSERT INTO {table} "
                "(queue, priority, payload, available_at, lease_seconds, deliveries, run_id, created_at) "
                "SELECT %s, %s, %s, %s, %s, 0, id, %s FROM inserted_run RETURNING id",
                [*run_params, self.list_key, priority, task, available,
                 lease or int(conf.q_cluster().get("retry", 360)), now],
                prepare=True,
            )
            return cursor.fetchone()[0]


# Moves due delayed packages onto their priority lists, oldest first, at most ARGV[2] at a time.
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
    local sep = string.find(member, '|', 1, true)
    local priority = string.sub(member, 1, sep - 1)
    redis.call('RPUSH', ARGV[3] .. priority, string.sub(member, sep + 1))
    redis.call('ZREM', KEYS[1], member)
end
return #due
"""


class PriorityRedisBroker(Broker):
    """Redis: one list per priority, BLPOP in priority order (strict), a sorted set for delayed packages.

    Like django-q2's own Redis broker there are no delivery receipts: a package
    taken by a cluster that dies is gone from Redis. Its TaskRun stays
    `running` until its lease is long past; then the scheduled
    services.recover_stalled_runs hands it back and it runs again.
    """

    def __init__(self, list_key: str | None = None):
        list_key = list_key or conf.queue_name()
        super().__init__(list_key=list_key)
        base = f"{conf.redis_prefix()}:{list_key}"
        self.list_prefix = f"{base}:p"
        self.delayed_key = f"{base}:delayed"
        self.priority_keys = [f"{self.list_prefix}{p}" for p in sorted(Priority.values, reverse=True)]
        self._promote = self.connection.register_script(_PROMOTE)

    @staticmethod
    def get_connection(list_key: str | None = None):
        import redis

        url = conf.redis_url()
        if not url:
            raise RuntimeError("PriorityRedisBroker needs Q_CLUSTER['redis'] (set REDIS_URL).")
        return redis.Redis.from_url(url)

    def enqueue(self, task: str):
        priority, eta, _lease, _run_id = package_hints(task)
        if eta is not None and eta > time.time():
            self.connection.zadd(self.delayed_key, {f"{priority}|{task}": eta})
        else:
            self.connection.rpush(f"{self.list_prefix}{priority}", task)
        return None

    def dequeue(self):
        self._promote(keys=[self.delayed_key], args=[time.time(), 100, self.list_prefix])
        popped = self.connection.blpop(self.priority_keys, timeout=max(conf.poll(), 0.01))
        if popped:
            return [(None, popped[1].decode() if isinstance(popped[1], bytes) else popped[1])]
        return None

    def queue_size(self) -> int:
        pipe = self.connection.pipeline()
        for key in self.priority_keys:
            pipe.llen(key)
        return sum(pipe.execute())

    def delayed_size(self) -> int:
        return self.connection.zcard(self.delayed_key)

    def lock_size(self) -> int:
        return 0

    def purge_queue(self):
        return self.connection.delete(*self.priority_keys, self.delayed_key)

    def delete_queue(self):
        return self.purge_queue()

    def ping(self) -> bool:
        return bool(self.connection.ping())

    def info(self) -> str:
        if not self._info:
            self._info = f"Courtside priority Redis {self.connection.info('server')['redis_version']}"
        return self._info


_brokers: dict[tuple, Broker] = {}


def get_task_broker() -> Broker:
    """The broker the settings name now (read at call time), one instance per process and configuration."""
    import importlib

    path = conf.broker_class()
    key = (path, conf.queue_name(), conf.redis_url(), conf.redis_prefix())
    broker = _brokers.get(key)
    if broker is None:
        module, name = path.rsplit(".", 1)
        broker = getattr(importlib.import_module(module), name)(list_key=conf.queue_name())
        _brokers[key] = broker
    return broker


def queue_depth_by_priority() -> dict[int, int]:
    """Packages waiting on the ORM broker per priority (delayed ones included)."""
    from django.db.models import Count

    rows = QueueMessage.objects.filter(queue=conf.queue_name(), deliveries=0).values("priority").annotate(n=Count("id"))
    depth = {p: 0 for p in Priority.values}
    depth.update({row["priority"]: row["n"] for row in rows})
    return depth


def lease_timedelta(seconds: int) -> timedelta:
    return timedelta(seconds=seconds)
