from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Probes (/healthz, /readyz), metrics (/metrics), request ids and JSON logs; no models."""

    name = "ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self):
        from django_q.signals import post_execute_in_worker, pre_execute

        from ops import logs, metrics
        from tenants import metering

        pre_execute.connect(logs.task_pre_execute, dispatch_uid="ops.task_run_id")
        post_execute_in_worker.connect(logs.task_post_execute, dispatch_uid="ops.task_run_id_clear")
        metering.admission_observe(metrics.observe_admission)
