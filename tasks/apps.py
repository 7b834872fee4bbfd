from django.apps import AppConfig


class TasksConfig(AppConfig):
    """Task runs on the django-q2 cluster: priority, retries, progress, cancellation."""

    name = "tasks"
    verbose_name = "Task queue"

    def ready(self):
        from django.db.models.signals import post_migrate
        from django.utils.module_loading import autodiscover_modules

        from tasks import checks, signals  # noqa: F401
        from tasks.engine import queues

        # django-q2's process queues, safe against a process SIGKILLed while it waits or works (before any
        # cluster makes its queues).
        queues.install()

        # Each app's tasks.py registers its tasks (and declares its system schedules) with the registry.
        autodiscover_modules("tasks")
        post_migrate.connect(_reconcile_system_schedules, sender=self, dispatch_uid="tasks.system_schedules")


def _reconcile_system_schedules(sender, using="default", plan=None, **kwargs):
    """After a migrate, the one step that puts the system schedules declared in code into TaskSchedule.

    Once, in public: django-tenants migrates each schema in turn; a flush (between transactional tests)
    sends post_migrate without a plan and is no migrate. Off under the tests (tasks.conf).
    """
    from django.db import connections

    from tasks import conf

    if plan is None or getattr(connections[using], "schema_name", "public") != "public":
        return
    if not conf.system_schedules_on_migrate():
        return
    from tasks.actions.schedules import system_schedules_reconcile  # apps load before actions can import models

    system_schedules_reconcile()
