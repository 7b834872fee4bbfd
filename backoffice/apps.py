from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The project itself: embedded database, demo bootstrap, admin sites."""

    name = "backoffice"
    verbose_name = "Courtside back office"
