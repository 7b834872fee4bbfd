"""Settings of a real `manage.py mcp_serve` subprocess in the tests: the test settings, a short registry TTL.

A heartbeat every 0.5 s is six beats inside the 3 s TTL: a live process keeps passing on a loaded
machine, a killed one lapses within seconds.
"""

from backoffice.settings.test import *  # noqa: F403

SERVICES = {"SELF_TTL": 3.0, "SELF_HEARTBEAT_EVERY": 0.5}
