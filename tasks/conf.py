"""The cluster settings as our layer reads them: at call time, so tests and benches can switch brokers."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from django.conf import settings

# A running attempt's lease and an ORM delivery's lock last the task's timeout
# plus this much: django-q2's guard kills a worker at timeout + 3 s, so past
# this margin the attempt is certainly dead and may be taken over.
DEFAULT_LEASE_GRACE = 10
# A run whose worker died this many times is failed: it is probably what kills it.
MAX_LOST_ATTEMPTS = 5


def q_cluster() -> dict:
    # Without Q_CLUSTER in the settings django-q2 runs on its defaults, and so do we (the tasks.W001 check warns).
    return getattr(settings, "Q_CLUSTER", None) or {}


def queue_name() -> str:
    conf = q_cluster()
    return conf.get("cluster_name") or conf.get("name") or "default"


def poll() -> float:
    return float(q_cluster().get("poll", 0.2))


def bulk() -> int:
    return int(q_cluster().get("bulk", 1))


def lease_grace() -> int:
    return int(q_cluster().get("lease_grace", DEFAULT_LEASE_GRACE))


def default_timeout() -> int:
    return int(q_cluster().get("timeout") or 300)


def redis_url() -> str | None:
    redis = q_cluster().get("redis")
    return redis if isinstance(redis, str) and redis else None


def redis_prefix() -> str:
    return q_cluster().get("redis_prefix", "courtside")


def broker_class() -> str:
    return q_cluster().get("broker_class") or "tasks.engine.orm_broker.PriorityORMBroker"


def system_schedules_on_migrate() -> bool:
    """Whether migrate reconciles the system schedules declared in code (TASKS_SYSTEM_SCHEDULES).

    Unset: on, except under the test settings and pytest (the registry's SELF_REGISTER does the same), so
    other tests never find the system schedules in their database; tests/tasks/test_system_jobs.py runs
    the reconcile itself.
    """
    value = getattr(settings, "TASKS_SYSTEM_SCHEDULES", None)
    if value is not None:
        return bool(value)
    module = getattr(settings, "SETTINGS_MODULE", "") or ""
    return not (module.endswith(".test") or module.startswith("tests.") or "pytest" in sys.modules)


def worker_heartbeat() -> float:
    """Seconds between a worker's heartbeats (tasks.engine.workers); 5 by default."""
    return float(q_cluster().get("worker_heartbeat", 5.0))


# Brokers that lease each run's package for the run's own timeout plus the lease grace (the ORM queue row's
# lease_seconds; Redis never redelivers, the recovery sweep goes by the run's lease_until): with them a run
# longer than the cluster's `retry` is not delivered again while it runs (tests/tasks/test_long_timeouts.py).
# django-q2's own brokers redeliver after `retry` whatever the task's timeout (PITFALLS.md).
RUN_LEASING_BROKERS = frozenset({"tasks.engine.orm_broker.PriorityORMBroker",
                                 "tasks.engine.redis_broker.PriorityRedisBroker"})


@dataclass(frozen=True)
class Snapshot:
    """The cluster settings read once, for a caller that needs several of them in one step (one call, not five)."""

    queue_name: str
    broker_class: str
    redis_url: str | None
    redis_prefix: str
    lease_grace: int
    default_timeout: int
    retry: int
    bulk: int
    poll: float

    @property
    def leases_per_run(self) -> bool:
        """Whether the broker leases each run's package for the run's own timeout (RUN_LEASING_BROKERS)."""
        return self.broker_class in RUN_LEASING_BROKERS


def current() -> Snapshot:
    """The cluster settings now (at call time, like every function here), in one read."""
    cluster = q_cluster()
    redis = cluster.get("redis")
    return Snapshot(
        queue_name=cluster.get("cluster_name") or cluster.get("name") or "default",
        broker_class=cluster.get("broker_class") or "tasks.engine.orm_broker.PriorityORMBroker",
        redis_url=redis if isinstance(redis, str) and redis else None,
        redis_prefix=cluster.get("redis_prefix", "courtside"),
        lease_grace=int(cluster.get("lease_grace", DEFAULT_LEASE_GRACE)),
        default_timeout=int(cluster.get("timeout") or 300),
        retry=int(cluster.get("retry", 360)),
        bulk=int(cluster.get("bulk", 1)),
        poll=float(cluster.get("poll", 0.2)),
    )
