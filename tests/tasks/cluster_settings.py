"""Settings of the qcluster subprocess in tests: the test settings, with the cluster's Q_CLUSTER.

Q_CLUSTER is taken from q_cluster.py when base.py does not import it, so the
cluster tests do not hinge on that line (the tasks.W001 check reports it).
"""

from backoffice.settings.test import *  # noqa: F403

if "Q_CLUSTER" not in globals():
    from backoffice.settings.q_cluster import Q_CLUSTER  # noqa: F401

# The cluster-wide timeout and retry a test's ClusterProcess asks for (tests.tasks.conftest).
import os  # noqa: E402

if os.environ.get("TEST_Q_RETRY"):
    Q_CLUSTER = {**Q_CLUSTER, "timeout": int(os.environ["TEST_Q_TIMEOUT"]),  # noqa: F405
                 "retry": int(os.environ["TEST_Q_RETRY"])}
