"""Eureka's self-preservation state, per service."""

from django.db import models


class SelfPreservation(models.Model):
    """Eureka's self-preservation, per service: while active, missed heartbeats evict nobody."""

    service_name = models.CharField("service name", max_length=63, unique=True)
    active = models.BooleanField("active", default=False)
    since = models.DateTimeField("since", null=True, blank=True)
    missed = models.PositiveIntegerField("instances that missed heartbeats", default=0)
    total = models.PositiveIntegerField("instances with heartbeats", default=0)
    evaluated_at = models.DateTimeField("evaluated at", null=True, blank=True)

    class Meta:
        verbose_name = "self-preservation state"
        ordering = ["service_name"]

    def __str__(self) -> str:
        return f"{self.service_name}: {'active' if self.active else 'inactive'}"
