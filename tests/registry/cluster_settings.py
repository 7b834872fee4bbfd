"""Test settings for a real django-q2 cluster subprocess: the ORM broker on the test database.

The registry's own, so its cluster test never depends on the shared Q_CLUSTER.
"""

from backoffice.settings.test import *  # noqa: F403

Q_CLUSTER = {
    "name": "courtside-services-test",
    "workers": 1,
    "timeout": 60,
    "retry": 120,
    "max_attempts": 1,
    "orm": "default",
    "poll": 0.1,
    "catch_up": False,
}
SERVICES = {"SELF_REGISTER": True, "SWEEP_BUDGET_SECONDS": 2.0, "SELF_HEARTBEAT_EVERY": 0.5, "SELF_TTL": 3.0}
