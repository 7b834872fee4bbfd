from django.apps import AppConfig


class ServicesConfig(AppConfig):
    """Service registry: instances, heartbeats, health checks, discovery."""

    name = "services"
