"""Test settings for a real django-q2 cluster subprocess: the project's broker on the test database.

The registry's own, so its cluster test never depends on the test settings' Q_CLUSTER: the project's
cluster settings (the priority ORM broker, on which a scheduled system job's TaskRun is delivered), one
worker, a queue of its own.
"""

from backoffice.settings.q_cluster import Q_CLUSTER as _PROJECT_CLUSTER
from backoffice.settings.test import *  # noqa: F403

Q_CLUSTER = {
    **_PROJECT_CLUSTER,
    # name and cluster_name equal: django-q2's scheduler fires schedules of no cluster only in such a cluster.
    "name": "courtside-services-test",
    "cluster_name": "courtside-services-test",
    "workers": 1,
    "queue_limit": 1,
    "timeout": 120,
    "retry": 180,
    "poll": 0.1,
    "catch_up": False,
}
Q_CLUSTER.pop("redis", None)
Q_CLUSTER["broker_class"] = "tasks.engine.orm_broker.PriorityORMBroker"
SERVICES = {"SELF_REGISTER": True, "SWEEP_BUDGET_SECONDS": 2.0, "SELF_HEARTBEAT_EVERY": 0.5, "SELF_TTL": 3.0}
