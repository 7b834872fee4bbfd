from django.apps import AppConfig


class SchemasConfig(AppConfig):
    """Migrations across every schema: ledger, checksums, drift, rollout."""

    name = "schemas"
