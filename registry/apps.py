from django.apps import AppConfig


class ServicesConfig(AppConfig):
    """Service registry: instances, heartbeats, health checks, discovery."""

    name = "registry"
    # The app was the package `services`: its label stays, so its tables (services_*), migrations, admin URLs
    # (/admin/services/…), content types and permissions do not move.
    label = "services"
    verbose_name = "Service registry"

    def ready(self):
        from django.core.signals import request_started
        from django_q.signals import post_spawn

        from registry import checks, conf, kinds, selfreg  # noqa: F401 - importing checks registers them

        kinds.load(conf.check_kind_modules())  # the project's own check kinds register themselves

        request_started.connect(selfreg.web_request_started, dispatch_uid="services.selfreg.web")
        post_spawn.connect(selfreg.cluster_worker_spawned, dispatch_uid="services.selfreg.cluster")
        # The health sweep and the Consul sync are system jobs (registry/tasks.py): the task layer's one
        # post_migrate step puts them on the schedules page, as it does every app's.

