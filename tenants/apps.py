from django.apps import AppConfig


class TenantsConfig(AppConfig):
    """Customers of Courtside, each with its own PostgreSQL schema."""

    name = "tenants"

    def ready(self):
        from schemas.spares import spare_schemas_register
        from tenants import provisioning

        # Pooled schemas are spare capacity: the ledger's lists count them instead of listing them.
        spare_schemas_register(label="pool", prefix=provisioning.POOL_PREFIX, count=provisioning.pool_counts)
