"""The one environ.Env() of the project; every settings module reads the environment through it."""

import base64
import hashlib

import environ

env = environ.Env()


def derived_secret_key(secret_key: str) -> str:
    """Development and tests only: a Fernet key derived from their own (non-secret) SECRET_KEY, so `make run` and
    `make test` encrypt configuration secrets with no COURTSIDE_SECRET_KEYS set (production requires it)."""
    digest = hashlib.sha256(f"courtside-configuration-secrets:{secret_key}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()
