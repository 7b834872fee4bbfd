from django.apps import AppConfig


class TenantsConfig(AppConfig):
    """Customers of Courtside, each with its own PostgreSQL schema."""

    name = "tenants"
