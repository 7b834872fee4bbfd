"""Priority brokers for django-q2: strict CRITICAL > HIGH > NORMAL > LOW dispatch, fair by tenant, delays, leases.

django-q2 1.11's ORM broker dequeues in no order and its Redis broker keeps one
FIFO list. Ours read the priority, the not-before time and the lease from the
signed package itself (the `_priority`, `_eta` and `_lease` keyword arguments
our services add), so a plain `async_task` through them still works: NORMAL,
now, the cluster's retry time.

The package's `courtside_tenant` (the tenant's id, 0 for the operator's work
and plain packages) says whose it is.

Fairness: within the highest priority that has work, tenants take turns
(round-robin, as Hatchet's concurrency groups do): each dequeue takes the
oldest package of the next tenant that has one, so a tenant flooding 10,000
runs delays another tenant's next run by one turn, not by 10,000 runs.

Starvation: dispatch is strict between priorities. Under a constant CRITICAL
stream that keeps every worker busy, LOW work waits for as long as the stream
lasts; nothing ages it upwards. Use priorities for urgency, not for volume.
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

from core.db import prepared_cursor, raw_cursor, soft_write
from tasks import conf
from tasks.models import Priority, QueueMessage


def public_table(model) -> str:
    """A public-schema table, schema-qualified: right whatever search_path the connection was left with."""
    from django_tenants.utils import get_public_schema_name

    return f'"{get_public_schema_name()}"."{model._meta.db_table}"'




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
    priority = kwargs.get("_priority", Priority.NORMAL)
    if priority not in Priority.values:
        priority = Priority.NORMAL
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
    elsewhere, gone) has a plain id: the worker's services.run_execute decides.
    """

    def __new__(cls, message_id: int, claim: dict):
        instance = super().__new__(cls, message_id)
        instance.claim = claim
        return instance

    def __reduce__(self):  # through the cluster's multiprocessing queues
        return ClaimedMessage, (int(self), self.claim)


class PriorityORMBroker(Broker):
    """PostgreSQL queue: one UPDATE ... FOR UPDATE SKIP LOCKED takes the most urgent packages, tenants in turn.

    The turn is this process's (the cluster's pusher): per priority, the tenant served last. Two clusters on
    one queue each keep their own; each still serves every tenant in turn.
    """

    def __init__(self, list_key: str | None = None):
        super().__init__(list_key=list_key or conf.queue_name())
        self._served_last = [-1] * len(Priority.values)  # per priority: the tenant key served last

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

    def dequeue(self):
        self._fresh()
        # Relaxed commit: a delivery lost in a server crash loses its claim with it (one WAL stream, and
        # everything the worker writes later comes after it), so the package is simply delivered again.
        rows = soft_write(_dequeue_sql(), {"queue": self.list_key, "bulk": conf.bulk(), "grace": conf.lease_grace(),
                                           "served_last": self._served_last},
                          alias=self._alias(), all_rows=True)
        if not rows:
            time.sleep(conf.poll())
            return None
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


# Takes due packages of the most urgent priority that has any, the next tenants' in turn: the oldest
# packages of the tenants after the one served last at that priority (%(served_last)s, per priority), then
# from the first tenant again, `bulk` at most (with bulk 1: one package, the next tenant's oldest). Each
# branch walks queuemessage_fair_dispatch (queue, priority, tenant_key, id) from where it starts and stops
# at `bulk` rows; the second is read only when the first ran short. It claims the queued runs the packages
# carry (courtside_claim_run, migrations tasks 0004/0005: the UPDATE services._FAST_CLAIM makes in a
# worker): the run becomes `claimed`, its attempt counted, its lease set. Not called for a plain package.
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
                "(queue, priority, payload, available_at, lease_seconds, deliveries, run_id, tenant_key, created_at) "
                "SELECT %s, %s, %s, %s, %s, 0, id, %s, %s FROM inserted_run RETURNING id",
                [*run_params, self.list_key, priority, task, available,
                 lease or int(conf.q_cluster().get("retry", 360)), self.run.tenant_id or 0, now],
                prepare=True,
            )
            return cursor.fetchone()[0]


# The Redis layout under {base} = {prefix}:{queue}: per priority p, a list per tenant t ({base}:p{p}:t{t})
# and the tenants that have packages there, in turn order ({base}:p{p}:turns: a tenant is in it exactly
# when its list is not empty); {base}:delayed, a sorted set of "p|t|package" by due time; {base}:wake, at
# most one token, pushed by each enqueue, on which an idle pusher blocks. Each script keeps the
# invariant whole; they name their keys from {base} (a single Redis, not a Redis Cluster).

# KEYS: the tenant's list, the priority's turns, wake. ARGV: tenant key, package.
_PUSH = """
if redis.call('RPUSH', KEYS[1], ARGV[2]) == 1 then redis.call('RPUSH', KEYS[2], ARGV[1]) end
redis.call('LPUSH', KEYS[3], '1')
redis.call('LTRIM', KEYS[3], 0, 0)
return 1
"""

# Moves due delayed packages onto their tenant's list, oldest first, at most ARGV[2] at a time.
# KEYS: delayed. ARGV: now, limit, base. A member written before tenants took turns ("p|package") counts as
# the operator's (tenant 0); signed packages hold no "|".
_PROMOTE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
    local first = string.find(member, '|', 1, true)
    local priority = string.sub(member, 1, first - 1)
    local rest = string.sub(member, first + 1)
    local second = string.find(rest, '|', 1, true)
    local tenant, package = '0', rest
    if second then tenant, package = string.sub(rest, 1, second - 1), string.sub(rest, second + 1) end
    local head = ARGV[3] .. ':p' .. priority
    if redis.call('RPUSH', head .. ':t' .. tenant, package) == 1 then redis.call('RPUSH', head .. ':turns', tenant) end
    redis.call('ZREM', KEYS[1], member)
end
return #due
"""

# The next package: the most urgent priority first; within it the tenant whose turn it is, which goes to the
# back of the turns while it has more. Lists of the single-list layout ({base}:p{p}) are drained too.
# ARGV: base. Returns the package or false.
_TAKE = """
for priority = 3, 0, -1 do
    local head = ARGV[1] .. ':p' .. priority
    while true do
        local tenant = redis.call('LPOP', head .. ':turns')
        if not tenant then break end
        local list = head .. ':t' .. tenant
        local package = redis.call('LPOP', list)
        if package then
            if redis.call('LLEN', list) > 0 then redis.call('RPUSH', head .. ':turns', tenant) end
            return package
        end
    end
    local legacy = redis.call('LPOP', head)
    if legacy then return legacy end
end
return false
"""

# Packages waiting on the lists (not the delayed ones). ARGV: base.
_SIZE = """
local total = 0
for priority = 0, 3 do
    local head = ARGV[1] .. ':p' .. priority
    for _, tenant in ipairs(redis.call('LRANGE', head .. ':turns', 0, -1)) do
        total = total + redis.call('LLEN', head .. ':t' .. tenant)
    end
    total = total + redis.call('LLEN', head)
end
return total
"""


class PriorityRedisBroker(Broker):
    """Redis: a list per priority and tenant, taken in priority order (strict) and by tenants in turn.

    Delayed packages wait in a sorted set until due. Like django-q2's own Redis
    broker there are no delivery receipts: a package taken by a cluster that
    dies is gone from Redis. Its TaskRun stays `running` until its lease is
    long past; then the scheduled services.recover_stalled_runs hands it back
    and it runs again.
    """

    def __init__(self, list_key: str | None = None):
        list_key = list_key or conf.queue_name()
        super().__init__(list_key=list_key)
        self.base = f"{conf.redis_prefix()}:{list_key}"
        self.delayed_key = f"{self.base}:delayed"
        self.wake_key = f"{self.base}:wake"
        self._push = self.connection.register_script(_PUSH)
        self._promote = self.connection.register_script(_PROMOTE)
        self._take = self.connection.register_script(_TAKE)
        self._size = self.connection.register_script(_SIZE)

    @staticmethod
    def get_connection(list_key: str | None = None):
        import redis

        url = conf.redis_url()
        if not url:
            raise RuntimeError("PriorityRedisBroker needs Q_CLUSTER['redis'] (set REDIS_URL).")
        return redis.Redis.from_url(url)

    def enqueue(self, task: str):
        priority, eta, _lease, _run_id, tenant_key = package_hints(task)
        if eta is not None and eta > time.time():
            self.connection.zadd(self.delayed_key, {f"{priority}|{tenant_key}|{task}": eta})
        else:
            head = f"{self.base}:p{priority}"
            self._push(keys=[f"{head}:t{tenant_key}", f"{head}:turns", self.wake_key], args=[tenant_key, task])
        return None

    def dequeue(self):
        self._promote(keys=[self.delayed_key], args=[time.time(), 100, self.base])
        package = self._take(args=[self.base])
        if not package and self.connection.blpop([self.wake_key], timeout=max(conf.poll(), 0.01)):
            package = self._take(args=[self.base])  # woken by an enqueue
        if package:
            return [(None, package.decode() if isinstance(package, bytes) else package)]
        return None

    def queue_size(self) -> int:
        return int(self._size(args=[self.base]))

    def delayed_size(self) -> int:
        return self.connection.zcard(self.delayed_key)

    def lock_size(self) -> int:
        return 0

    def purge_queue(self):
        keys = list(self.connection.scan_iter(match=f"{self.base}:*", count=1000))
        return self.connection.delete(*keys) if keys else 0

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
