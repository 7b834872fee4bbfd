"""Shared counters: round-robin positions and change indexes, bumped in one statement."""

from django.db import models


class RegistryCounter(models.Model):
    """A shared counter: a service's round-robin position, or its change index for blocking queries.

    Bumped by one INSERT ... ON CONFLICT DO UPDATE ... RETURNING, so every web
    process shares the same position (a per-process itertools.cycle would not).
    """

    key = models.CharField("key", max_length=300, primary_key=True, help_text="rr:<name>|<tags> or index:<name>.")
    value = models.BigIntegerField("value", default=0)

    class Meta:
        verbose_name = "registry counter"
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"
