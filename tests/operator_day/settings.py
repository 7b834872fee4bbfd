"""Settings of the operator's-day deployment (the web server and the task cluster it starts as subprocesses).

The test settings, plus a throwaway tenant app, `courtside_day`, that the test
writes into a temporary folder (OPERATOR_DAY_APP_DIR): the operator's new
migration lands there, never in a real app. Everything else (self-registration
TTLs, queue name, export folder) comes from the environment, as in production.
"""

import os
import sys

from backoffice.settings.test import *  # noqa: F403
from backoffice.settings.test import INSTALLED_APPS, TENANT_APPS

if "Q_CLUSTER" not in globals():
    from backoffice.settings.q_cluster import Q_CLUSTER  # noqa: F401

_APP_DIR = os.environ["OPERATOR_DAY_APP_DIR"]
if _APP_DIR not in sys.path:
    sys.path.insert(0, _APP_DIR)

DAY_APP = "courtside_day"
TENANT_APPS = [*TENANT_APPS, DAY_APP]
INSTALLED_APPS = [*INSTALLED_APPS, DAY_APP]
# The test settings pin the export folder; the day's exports go where the test looks for them.
TENANT_EXPORT_DIR = os.environ.get("TENANT_EXPORT_DIR", TENANT_EXPORT_DIR)  # noqa: F405
