from django.apps import AppConfig


class ConfigurationConfig(AppConfig):
    """Layered, validated, hot-reloaded configuration with history."""

    name = "configuration"
