"""django-q2 cluster settings (owned by the tasks app)."""

# base.py imports this module; it reads the environment through the shared
# `env`, not through base, so importing it first (tests, scripts) is no cycle.
from .environment import env

REDIS_URL = env.str("REDIS_URL", default="")

_workers = env.int("Q_WORKERS", default=2)

# django-q2. `retry` must exceed `timeout` (plus our lease grace), or a long task runs twice.
Q_CLUSTER = {
    # `name` salts the package signatures: every process that enqueues must share it.
    "name": "courtside",
    # The queue this cluster serves (broker list key): lets test runs and benches use a queue of their own.
    "cluster_name": env.str("TASKS_QUEUE_NAME", default="courtside"),
    "workers": _workers,
    "timeout": 300,
    "retry": 360,
    # Our layer records and retries failures itself (with backoff); django-q2
    # acknowledges failed packages and never re-runs them on its own.
    "max_attempts": 0,
    "ack_failures": True,
    # TaskRun keeps every result; django-q2's Success table would be a second,
    # pruned copy whose pruning costs a full scan per task.
    "save_limit": -1,
    "catch_up": False,
    "poll": env.float("Q_POLL", default=0.2),
    # Strict priority needs a short prefetch: packages already handed to the
    # worker pool cannot be overtaken by a CRITICAL one.
    "queue_limit": env.int("Q_QUEUE_LIMIT", default=_workers),
    # Packages one dequeue takes and claims in one statement; in a pusher never more than its prefetch queue
    # (queue_limit) has room for, so the prefetch stays as deep as before (tasks.engine.orm_broker).
    "bulk": env.int("Q_BULK", default=max(1, _workers)),
    "orm": "default",
    "broker_class": "tasks.engine.orm_broker.PriorityORMBroker",
    # Seconds added to a task's timeout for its lease and its ORM delivery lock.
    "lease_grace": env.int("TASKS_LEASE_GRACE", default=10),
    # Seconds between each worker's heartbeats (worker health: tasks.engine.workers).
    "worker_heartbeat": env.float("TASKS_WORKER_HEARTBEAT", default=5.0),
    "label": "Task cluster",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
    Q_CLUSTER["broker_class"] = "tasks.engine.redis_broker.PriorityRedisBroker"
    # Redis keys start with this, so two deployments (or test runs) on one Redis never meet.
    Q_CLUSTER["redis_prefix"] = env.str("TASKS_REDIS_PREFIX", default="courtside")
