from django.apps import AppConfig


class ConfigurationConfig(AppConfig):
    """Layered, validated, hot-reloaded configuration with history."""

    name = "configuration"
    verbose_name = "configuration"

    def ready(self):
        from configuration import checks, etcd_layer  # noqa: F401  (checks: registers the system checks)

        etcd_layer.install()  # the etcd layer, when COURTSIDE_CONFIG_ETCD_URL names one
