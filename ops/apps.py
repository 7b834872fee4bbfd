from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Probes (/healthz, /readyz), metrics (/metrics), request ids and JSON logs; no models."""

    name = "ops"
    label = "ops"
    verbose_name = "Operations"
