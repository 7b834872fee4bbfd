"""Production: every secret and the database come from the environment."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import CONFIGURATION_SECRET_KEYS, database_config, env

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default="")
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY must be set to at least 50 random characters in production.")
if not CONFIGURATION_SECRET_KEYS:
    raise ImproperlyConfigured(
        "COURTSIDE_SECRET_KEYS must be set in production: comma-separated Fernet keys, newest first, that encrypt "
        "configuration secrets (make one with `manage.py config_secrets generate-key`)."
    )
DATABASES = {"default": database_config(allow_embedded=False)}

# Static files with hashed names and gzip variants, served by WhiteNoise (bin/run runs collectstatic first).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}  # noqa: F405

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Operator superusers must pass a TOTP code (or a recovery code) to use the operator admin.
MFA_REQUIRED_FOR_OPERATOR_SUPERUSERS = env.bool("MFA_REQUIRED_FOR_OPERATOR_SUPERUSERS", default=True)

# One JSON object per log line, and one line per request.
LOGGING["handlers"]["console"]["formatter"] = env.str("LOG_FORMAT", default="json")  # noqa: F405
LOGGING["loggers"]["courtside.request"]["level"] = env.str("LOG_REQUEST_LEVEL", default="INFO")  # noqa: F405
