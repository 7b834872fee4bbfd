"""Tests: the embedded PostgreSQL unless DATABASE_URL is set; fast hashing."""

from .base import *  # noqa: F403
from .base import ALLOWED_HOSTS, BASE_DIR, CONFIGURATION_SECRET_KEYS, database_config, env
from .environment import derived_secret_key

DEBUG = False
SECRET_KEY = env.str("SECRET_KEY", default="courtside-test-only-not-a-secret")
CONFIGURATION_SECRET_KEYS = CONFIGURATION_SECRET_KEYS or [derived_secret_key(SECRET_KEY)]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
ALLOWED_HOSTS = [*ALLOWED_HOSTS, "testserver"]
MEDIA_ROOT = BASE_DIR / "var" / "test-media"
DATABASES = {"default": database_config(allow_embedded=True)}
TENANT_POOL_SIZE = 0  # pool tests turn it on; others provision the stock way
TENANT_EXPORT_DIR = BASE_DIR / "var" / "test-exports"
# No collectstatic in tests: WhiteNoise finds static files through the finders, as in development.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
