"""Test settings of a real web-server subprocess that registers itself, with a short TTL so tests stay short.

The heartbeat every 0.5 s is six times inside the 3 s TTL: a live process keeps
passing even on a loaded machine, a killed one lapses within seconds.
"""

from backoffice.settings.test import *  # noqa: F403

SERVICES = {"SELF_REGISTER": True, "SELF_TTL": 3.0, "SELF_HEARTBEAT_EVERY": 0.5}

# These servers run with no task cluster: their /readyz (and so their registered readiness check, issue 16.2)
# leaves the cluster out, as a web-only deployment configures it; tests/deploy/test_probes.py covers the
# cluster's part of readiness.
HEALTH_CHECK_CLUSTER = False
