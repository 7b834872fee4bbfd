from django.apps import AppConfig


class TasksConfig(AppConfig):
    """Task runs on the django-q2 cluster: priority, retries, progress, cancellation."""

    name = "tasks"
