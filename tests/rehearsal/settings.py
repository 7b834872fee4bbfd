"""Settings of the rehearsal's processes: production's, plus an observer of the configuration (observer.py).

Every web worker and every process of each cluster appends one line to
REHEARSAL_OBSERVER_LOG when its own configuration store learns a new value of
the watched key (its listener thread, woken by PostgreSQL's NOTIFY): that is
how the rehearsal sees each live process pick up each change. Nothing else
differs from backoffice.settings.production.
"""

from backoffice.settings.production import *  # noqa: F403
from backoffice.settings.production import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.rehearsal.observer.ObserverConfig"]
