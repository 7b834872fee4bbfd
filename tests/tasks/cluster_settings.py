"""Settings of the qcluster subprocess in tests: the test settings plus the cluster's.

Q_CLUSTER is imported here too so the cluster tests do not depend on
base.py's import of it (the tasks.W001 check reports when that is missing).
"""

from backoffice.settings.q_cluster import Q_CLUSTER  # noqa: F401
from backoffice.settings.test import *  # noqa: F403
