"""Settings of the bench's reference cluster: django-q2's own ORM broker (OrmQ table, no priorities).

Used only by bench/tasks.py for the figure the issue quotes ("plain django-q2 on
the ORM broker"); the product always runs tasks.engine.orm_broker.PriorityORMBroker.
"""

from backoffice.settings.local import *  # noqa: F403
from backoffice.settings.local import Q_CLUSTER

Q_CLUSTER = {**Q_CLUSTER, "broker_class": "django_q.brokers.orm.ORM"}
