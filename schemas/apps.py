from django.apps import AppConfig


class SchemasConfig(AppConfig):
    """Migrations across every schema: ledger, checksums, drift, rollout."""

    name = "schemas"
    verbose_name = "Schemas and migrations"

    def ready(self):
        from django.db.models.signals import post_migrate, pre_migrate

        from schemas import checks, signals  # noqa: F401  registers the drift check

        pre_migrate.connect(signals.ledger_pre_migrate, sender=self, dispatch_uid="schemas_ledger_pre")
        post_migrate.connect(signals.ledger_post_migrate, sender=self, dispatch_uid="schemas_ledger_post")
