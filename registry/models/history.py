"""What happened in the registry, as events the admin and the API list."""

from django.db import models


class RegistryEvent(models.Model):
    """What happened in the registry: registrations, status changes, evictions, self-preservation."""

    class Kind(models.TextChoices):
        REGISTERED = "registered", "Registered"
        UPDATED = "updated", "Re-registered"
        DEREGISTERED = "deregistered", "Deregistered"
        EVICTED = "evicted", "Deregistered after critical grace"
        STATUS = "status", "Status changed"
        MAINTENANCE = "maintenance", "Maintenance changed"
        SELF_PRESERVATION_ON = "self_preservation_on", "Self-preservation started"
        SELF_PRESERVATION_OFF = "self_preservation_off", "Self-preservation ended"
        CONSUL_SYNC = "consul_sync", "Consul sync"
        INVALID = "invalid", "Out-of-range value found"

    at = models.DateTimeField("at", auto_now_add=True, db_index=True)
    kind = models.CharField("kind", max_length=32, choices=Kind.choices)
    service_name = models.CharField("service name", max_length=63, blank=True, db_index=True)
    service_id = models.CharField("service id", max_length=128, blank=True)
    message = models.TextField("message", blank=True)
    detail = models.JSONField("detail", default=dict, blank=True)

    class Meta:
        verbose_name = "registry event"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.service_name}/{self.service_id}"
