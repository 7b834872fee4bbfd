"""The Redis broker: a list per priority and tenant, taken by priority (strict) and by tenants in turn."""

from __future__ import annotations

import atexit
import collections
import functools
import json
import logging
import multiprocessing.util
import os
import threading
import time
import weakref
from datetime import UTC, datetime

from django_q.brokers import Broker

from core.db import soft_write
from tasks import conf
from tasks.engine import acknowledgements
from tasks.engine.broker import Acknowledgement, ClaimedMessage, dequeue_batch_size, package_hints
from tasks.engine.outcome import record_acknowledged_success, record_successes

logger = logging.getLogger("tasks")

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

# The next packages, at most ARGV[4]: the most urgent priority first; within it the tenant whose turn it is,
# which goes to the back of the turns while it has more. Lists of the single-list layout ({base}:p{p}) are
# drained too. Due delayed packages are moved onto their tenant's list first (_PROMOTE's body, at most ARGV[3]),
# so a dequeue is one round trip, whatever it takes. ARGV: base, now, promote limit, take limit. Returns the
# packages in the order taken (possibly none).
_TAKE = """
local base = ARGV[1]
local due = redis.call('ZRANGEBYSCORE', base .. ':delayed', '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
    local first = string.find(member, '|', 1, true)
    local priority = string.sub(member, 1, first - 1)
    local rest = string.sub(member, first + 1)
    local second = string.find(rest, '|', 1, true)
    local tenant, package = '0', rest
    if second then tenant, package = string.sub(rest, 1, second - 1), string.sub(rest, second + 1) end
    local head = base .. ':p' .. priority
    if redis.call('RPUSH', head .. ':t' .. tenant, package) == 1 then redis.call('RPUSH', head .. ':turns', tenant) end
    redis.call('ZREM', base .. ':delayed', member)
end
local limit = tonumber(ARGV[4])
local taken = {}
for priority = 3, 0, -1 do
    local head = base .. ':p' .. priority
    while #taken < limit do
        local tenant = redis.call('LPOP', head .. ':turns')
        if not tenant then break end
        local list = head .. ':t' .. tenant
        local package = redis.call('LPOP', list)
        if package then
            if redis.call('LLEN', list) > 0 then redis.call('RPUSH', head .. ':turns', tenant) end
            taken[#taken + 1] = package
        end
    end
    while #taken < limit do
        local legacy = redis.call('LPOP', head)
        if not legacy then break end
        taken[#taken + 1] = legacy
    end
    if #taken >= limit then break end
end
return taken
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


# Packages sent in one pipeline (one round trip) by enqueue_packages.
PIPELINE_SIZE = 1000
# Pushes a process may have sent without reading their answers; past it, a push waits for the oldest.
MAX_UNANSWERED = 1000
# A pushing connection idle this long goes back to the pool (checked there) before the next push.
IDLE_SECONDS = 5.0


class _Unanswered:
    """A run's push sent to Redis without waiting for its answer, which is read later, in order.

    A submission's two round trips were both waited for: the run's row committed, then its push. Under
    load each wait costs the scheduling of another process on a shared machine, whatever the work. The
    push must still follow the commit (a worker never sees a package before its row), but its answer
    need not be waited for: it is sent on a connection this process keeps taken from the pool (given
    back after IDLE_SECONDS without a push, for the pool to check), and its answer read by the next
    push (when it has come), before any other read of the queue here (queue_size, purge, a batch), and
    at exit. A refused push (NOSCRIPT after a Redis restart, an error) is sent again and waited for; a
    connection lost with answers owed sends their packages again (a duplicate package is harmless: the
    run's claim lets one through); a package that still cannot be pushed is left to the recovery sweep
    (tasks.engine.recovery), as one whose process died between the commit and the push always was.
    """

    def __init__(self, broker):
        self.broker, self.pid = broker, os.getpid()
        self.lock = threading.Lock()
        self.connection = None
        self.used = 0.0
        self.owed: collections.deque = collections.deque()

    def send(self, package) -> None:
        broker = self.broker
        with self.lock:
            self._read(block=len(self.owed) >= MAX_UNANSWERED)
            if package.eta is not None and package.eta > time.time():
                command = ("ZADD", broker.delayed_key, package.eta,
                           f"{package.priority}|{package.tenant_key}|{package.payload}")
            else:
                head = f"{broker.base}:p{package.priority}"
                command = ("EVALSHA", broker._push.sha, 3, f"{head}:t{package.tenant_key}", f"{head}:turns",
                           broker.wake_key, package.tenant_key, package.payload)
            now = time.monotonic()
            if self.connection is not None and not self.owed and now - self.used > IDLE_SECONDS:
                # Back to the pool, whose get_connection() checks it: a connection left idle may have died
                # meanwhile, and a push sent on it would be lost without a word.
                broker.connection.connection_pool.release(self.connection)
                self.connection = None
            if self.connection is None:
                self.connection = broker.connection.connection_pool.get_connection()
            self.used = now
            try:
                self.connection.send_command(*command)
            except Exception:
                self._drop()
                broker.file_waited(package)  # as before: waited for, its error the submitter's
                return
            self.owed.append(package)

    def read(self, *, block: bool) -> None:
        with self.lock:
            self._read(block=block)

    def _read(self, *, block: bool) -> None:
        from redis.exceptions import ConnectionError, ResponseError, TimeoutError

        refused = []
        while self.owed:
            try:
                if not block and not self.connection.can_read(timeout=0):
                    break
                self.connection.read_response()
            except ResponseError:
                refused.append(self.owed.popleft())
                continue
            except (ConnectionError, TimeoutError, OSError):
                refused.extend(self.owed)
                self.owed.clear()
                self._drop()
                break
            self.owed.popleft()
        for package in refused:
            try:
                self.broker.file_waited(package)
            except Exception:
                logger.warning("Run %s's package could not be pushed to Redis; the recovery sweep will hand it "
                               "back", package.run_id, exc_info=True)

    def _drop(self) -> None:
        if self.connection is not None:
            self.connection.disconnect()
            self.broker.connection.connection_pool.release(self.connection)
        self.connection = None


_unanswered_everywhere: weakref.WeakSet = weakref.WeakSet()
_unanswered_lock = threading.Lock()


def _settle_at_exit() -> None:
    for unanswered in list(_unanswered_everywhere):
        if unanswered.pid == os.getpid():
            try:
                unanswered.read(block=True)
            except Exception:
                pass


# At exit: atexit for a plain process; a cluster's worker ends with os._exit, which runs no atexit handler,
# so each process that pushes also registers with multiprocessing's finalizers (cleared in a new child).
atexit.register(_settle_at_exit)
_finalized_pids: set[int] = set()


class PriorityRedisBroker(Broker):
    """Redis: a list per priority and tenant, taken in priority order (strict) and by tenants in turn.

    Delayed packages wait in a sorted set until due. Like django-q2's own Redis
    broker there are no delivery receipts: a package taken by a cluster that
    dies is gone from Redis. Its TaskRun stays `running` until its lease is
    long past; then the scheduled tasks.engine.recovery hands it back
    and it runs again.
    """

    def __init__(self, list_key: str | None = None):
        list_key = list_key or conf.queue_name()
        super().__init__(list_key=list_key)
        self.base = f"{conf.redis_prefix()}:{list_key}"
        self.delayed_key = f"{self.base}:delayed"
        self.wake_key = f"{self.base}:wake"
        self._push = self.connection.register_script(_PUSH)
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
        self._file(self.connection, task, priority, eta, tenant_key)
        return None

    def _file(self, client, task: str, priority: int, eta: float | None, tenant_key: int):
        if eta is not None and eta > time.time():
            return client.zadd(self.delayed_key, {f"{priority}|{tenant_key}|{task}": eta})
        head = f"{self.base}:p{priority}"
        return self._push(keys=[f"{head}:t{tenant_key}", f"{head}:turns", self.wake_key], args=[tenant_key, task],
                          client=client)

    def enqueue_packages(self, packages) -> None:
        """Packages with their hints (tasks.engine.broker.Package), never decoded again: one alone sent without
        waiting for Redis's answer (_Unanswered), more in one pipeline per PIPELINE_SIZE, one round trip each."""
        if len(packages) == 1:
            self._unanswered().send(packages[0])
            return
        self.settle()
        from redis.exceptions import NoScriptError

        for start in range(0, len(packages), PIPELINE_SIZE):
            chunk = packages[start:start + PIPELINE_SIZE]
            pipeline = self.connection.pipeline(transaction=False)
            for package in chunk:
                if package.eta is not None and package.eta > time.time():
                    self._file(pipeline, package.payload, package.priority, package.eta, package.tenant_key)
                else:  # EVALSHA straight: a Script in a pipeline asks SCRIPT EXISTS first, a round trip more
                    head = f"{self.base}:p{package.priority}"
                    pipeline.evalsha(self._push.sha, 3, f"{head}:t{package.tenant_key}", f"{head}:turns",
                                     self.wake_key, package.tenant_key, package.payload)
            results = pipeline.execute(raise_on_error=False)
            for package, result in zip(chunk, results, strict=True):
                if isinstance(result, NoScriptError):  # a Redis restarted since: the script loaded again
                    self._file(self.connection, package.payload, package.priority, package.eta, package.tenant_key)
                elif isinstance(result, Exception):
                    raise result

    def _unanswered(self) -> _Unanswered:
        unanswered = self.__dict__.get("_unanswered_pushes")
        if unanswered is None or unanswered.pid != os.getpid():  # a forked child never reads its parent's answers
            with _unanswered_lock:
                unanswered = self.__dict__.get("_unanswered_pushes")
                if unanswered is None or unanswered.pid != os.getpid():
                    unanswered = self._unanswered_pushes = _Unanswered(self)
                    _unanswered_everywhere.add(unanswered)
                    if unanswered.pid not in _finalized_pids:
                        _finalized_pids.add(unanswered.pid)
                        multiprocessing.util.Finalize(None, _settle_at_exit, exitpriority=10)
        return unanswered

    def settle(self) -> None:
        """Read every answer still owed to this process's pushes (their packages sent again if refused)."""
        unanswered = self.__dict__.get("_unanswered_pushes")
        if unanswered is not None and unanswered.pid == os.getpid():
            unanswered.read(block=True)

    def file_waited(self, package) -> None:
        """A package pushed and its answer waited for (the script loaded again after a Redis restart)."""
        self._file(self.connection, package.payload, package.priority, package.eta, package.tenant_key)

    def dequeue(self):
        """Up to `bulk` packages (never more than the pusher's prefetch has room for), in one round trip."""
        limit = dequeue_batch_size(conf.current().bulk)
        packages = self._take(args=[self.base, time.time(), 100, limit])
        if not packages and self.connection.blpop([self.wake_key], timeout=max(conf.poll(), 0.01)):
            packages = self._take(args=[self.base, time.time(), 100, limit])  # woken by an enqueue
        if packages:
            return self._claimed([package.decode() if isinstance(package, bytes) else package for package in packages])
        return None

    def _claimed(self, payloads: list[str]) -> list[tuple]:
        """The packages taken, their runs claimed in one statement (as the ORM broker's dequeue claims them).

        The worker then starts a run without a statement of its own (tasks.engine.delivery): the claim's
        round trip is the pusher's, made while the workers run the tasks before, and one per batch. A run
        that cannot be claimed (cancelled, running elsewhere, an early retry), a plain package, or a batch
        whose claim fails (the database away) goes out as before, without a claim: the worker decides.
        """
        from django.db import DatabaseError, connection

        runs = [package_hints(payload)[3] for payload in payloads]
        ids = [run_id for run_id in runs if run_id is not None]
        claims: dict[int, dict] = {}
        if ids:
            try:
                # Relaxed commit, as the ORM dequeue's: a claim lost in a server crash is made again when the
                # recovery sweep hands the run back (its lease ran out), the attempt recorded as lost.
                rows = soft_write(_claim_runs_sql(), {"ids": ids, "grace": conf.lease_grace()}, all_rows=True)
            except DatabaseError:
                logger.warning("Could not claim %d runs at their dequeue; their workers claim them", len(ids),
                               exc_info=True)
                connection.close_if_unusable_or_obsolete()  # a broken connection: the next dequeue opens another
                rows = []
            delivered_at = time.time()
            for ordinal, claimed in rows:
                if claimed is None:
                    continue
                claimed = json.loads(claimed) if isinstance(claimed, str) else claimed  # jsonb comes as text
                claims[ordinal - 1] = {"values": claimed,
                                       "claimed_at": datetime.fromtimestamp(claimed.pop("claimed_at"), tz=UTC),
                                       "delivered_at": delivered_at}
        packages, position = [], 0
        for payload, run_id in zip(payloads, runs, strict=True):
            claim = None
            if run_id is not None:
                claim, position = claims.get(position), position + 1
            packages.append((None if claim is None else ClaimedMessage(0, claim), payload))
        return packages

    def acknowledge(self, task_id):
        """No receipts on Redis; a run's success handed back by its worker is recorded here (in the monitor)."""
        if isinstance(task_id, Acknowledgement) and not acknowledgements.hold(self, task_id):
            record_acknowledged_success(task_id)  # else held and recorded with a batch (tasks.engine.acknowledgements)

    def acknowledge_batch(self, acks) -> int:
        """Record the successes of a batch of acknowledgements in one statement."""
        return record_successes(list(acks))

    def queue_size(self) -> int:
        self.settle()
        return int(self._size(args=[self.base]))

    def delayed_size(self) -> int:
        self.settle()
        return self.connection.zcard(self.delayed_key)

    def lock_size(self) -> int:
        return 0

    def purge_queue(self):
        self.settle()
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


# The runs of a dequeue's packages claimed in one statement (courtside_claim_run: tasks.engine.claim's rule),
# each claim (or NULL) with its position in the batch.
_CLAIM_RUNS = """
SELECT r.ordinal, {schema}.courtside_claim_run(r.id, %(grace)s)
FROM unnest(%(ids)s::uuid[]) WITH ORDINALITY AS r(id, ordinal)
ORDER BY r.ordinal
"""


@functools.cache
def _claim_runs_sql() -> str:
    from django_tenants.utils import get_public_schema_name

    return _CLAIM_RUNS.format(schema=f'"{get_public_schema_name()}"')


_brokers: dict[tuple, Broker] = {}
