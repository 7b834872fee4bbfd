from django.apps import AppConfig


class SecurityConfig(AppConfig):
    """Login throttling (django-axes), MFA (django-otp) and the audit log (django-auditlog), per schema."""

    name = "security"
    verbose_name = "Security"

    def ready(self):
        from security import audit, signals  # noqa: F401 - audit registers the models, signals log failures

        audit.register_models()
