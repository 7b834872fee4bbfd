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
        from django.db.models.signals import post_migrate
        from django_q.signals import post_spawn

        from registry import checks, conf, kinds, selfreg  # noqa: F401 - importing checks registers them

        kinds.load(conf.check_kind_modules())  # the project's own check kinds register themselves

        request_started.connect(selfreg.web_request_started, dispatch_uid="services.selfreg.web")
        post_spawn.connect(selfreg.cluster_worker_spawned, dispatch_uid="services.selfreg.cluster")
        post_migrate.connect(_ensure_schedules, sender=self, dispatch_uid="services.schedules")


def _ensure_schedules(sender, using="default", **kwargs):
    """After migrate: the health-sweep schedule exists (off under the test settings)."""
    from django_tenants.utils import schema_context

    from registry import conf, sweeps

    if conf.auto_schedule_enabled():
        with schema_context("public"):
            sweeps.health_schedule_ensure()
