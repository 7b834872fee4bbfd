"""The credential of a service: a token's SHA-256, the token itself shown once."""

from django.db import models

from registry.models.validation import service_name_validator


class ServiceToken(models.Model):
    """The credential of one service: only its SHA-256 is stored, the token is shown once."""

    service_name = models.CharField(
        "service name", max_length=63, unique=True, validators=[service_name_validator],
        help_text="Instances of this service register and heartbeat with this token.",
    )
    token_hash = models.CharField(
        "token hash", max_length=64, unique=True, editable=False, help_text="SHA-256 of the token, hex."
    )
    token_prefix = models.CharField(
        "token prefix", max_length=16, editable=False, help_text="First characters, to tell tokens apart."
    )
    created_at = models.DateTimeField("created at", auto_now_add=True)

    class Meta:
        verbose_name = "service token"
        ordering = ["service_name"]

    def __str__(self) -> str:
        return f"{self.service_name} ({self.token_prefix}…)"
