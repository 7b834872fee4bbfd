from django.apps import AppConfig


class ConfigurationConfig(AppConfig):
    """Layered, validated, hot-reloaded configuration with history."""

    name = "configuration"
    verbose_name = "configuration"

    def ready(self):
        from configuration import checks  # noqa: F401  (registers the system checks)
