"""System checks of the task cluster's settings."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.compatibility)
def q_cluster_settings(app_configs, **kwargs):
    conf = getattr(settings, "Q_CLUSTER", None)
    if conf is None:
        return [Warning(
            "Q_CLUSTER is not in the settings: django-q2 falls back to Redis on localhost and no priorities.",
            hint="backoffice/settings/base.py must contain `from .q_cluster import Q_CLUSTER`.",
            id="tasks.W001",
        )]
    errors = []
    timeout, retry = conf.get("timeout"), conf.get("retry", 60)
    if timeout and retry <= timeout:
        errors.append(Error(
            f"Q_CLUSTER retry ({retry}) must exceed timeout ({timeout}), or a long task runs twice.",
            id="tasks.E002",
        ))
    return errors
