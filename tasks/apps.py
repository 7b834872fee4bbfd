from django.apps import AppConfig


class TasksConfig(AppConfig):
    """Task runs on the django-q2 cluster: priority, retries, progress, cancellation."""

    name = "tasks"
    verbose_name = "Task queue"

    def ready(self):
        from django.utils.module_loading import autodiscover_modules

        from tasks import checks, signals  # noqa: F401

        # Each app's tasks.py registers its tasks on the allow-list.
        autodiscover_modules("tasks")
