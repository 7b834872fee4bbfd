"""Statuses of instances and checks, below the models so that check kinds can use them without the models."""

from django.db import models


class Status(models.TextChoices):
    PASSING = "passing", "Passing"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"
    MAINTENANCE = "maintenance", "Maintenance"


# Worst wins when an instance's checks disagree (Consul's aggregation).
STATUS_SEVERITY = {Status.PASSING: 0, Status.WARNING: 1, Status.CRITICAL: 2}
