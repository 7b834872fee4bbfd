"""Development: the embedded PostgreSQL unless DATABASE_URL is set."""

from .base import *  # noqa: F403
from .base import CONFIGURATION_SECRET_KEYS, database_config, env
from .environment import derived_secret_key

DEBUG = env.bool("DEBUG", default=True)
# A development-only key, never used in production (production.py requires SECRET_KEY).
SECRET_KEY = env.str("SECRET_KEY", default="courtside-local-development-only-not-a-secret")
CONFIGURATION_SECRET_KEYS = CONFIGURATION_SECRET_KEYS or [derived_secret_key(SECRET_KEY)]
DATABASES = {"default": database_config(allow_embedded=True)}
