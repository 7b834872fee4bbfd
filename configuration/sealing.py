"""Configuration secrets encrypted at rest: Fernet (cryptography) with keys from the environment, rotatable.

A value that is or holds a secret is stored as `{"$fernet": "<token>"}` in its
JSON column, so a database dump shows no secret. The keys are
settings.CONFIGURATION_SECRET_KEYS (COURTSIDE_SECRET_KEYS, comma-separated,
newest first): the newest encrypts, every key decrypts (MultiFernet), and
`manage.py config_secrets rotate` re-encrypts every stored value with the
newest, after which older keys can be removed. Production refuses to start
without keys; development and tests derive one from their own SECRET_KEY.
"""

from __future__ import annotations

import functools
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ENVELOPE = "$fernet"
SETTING = "CONFIGURATION_SECRET_KEYS"
ENV_VARIABLE = "COURTSIDE_SECRET_KEYS"


class SealError(ImproperlyConfigured):
    """A stored secret cannot be decrypted with the configured keys (or no valid keys are configured)."""


class Sealed:
    """A value to be written encrypted (the field turns it into the envelope)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self) -> str:
        return "Sealed(********)"


def configured_keys() -> tuple[str, ...]:
    return tuple(key.strip() for key in getattr(settings, SETTING, ()) or () if key and key.strip())


@functools.lru_cache(maxsize=8)
def _keyring(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise SealError(f"{ENV_VARIABLE} is empty: configuration secrets cannot be encrypted or read.")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError) as exc:
            raise SealError(
                f"{ENV_VARIABLE}: key {position} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "make one with `manage.py config_secrets generate-key`."
            ) from exc
    return MultiFernet(fernets)


def keyring() -> MultiFernet:
    return _keyring(configured_keys())


def check_keys() -> str | None:
    """None when the configured keys are usable, else the reason."""
    try:
        keyring()
    except SealError as exc:
        return str(exc)
    return None


def is_sealed(stored) -> bool:
    return type(stored) is dict and len(stored) == 1 and isinstance(stored.get(ENVELOPE), str)


def seal(value) -> dict:
    token = keyring().encrypt(json.dumps(value, sort_keys=True, separators=(",", ":")).encode())
    return {ENVELOPE: token.decode()}


def _unreadable() -> SealError:
    return SealError(
        f"A stored configuration secret cannot be decrypted with {ENV_VARIABLE}: was the key that encrypted "
        "it removed before `manage.py config_secrets rotate` ran? Put it back (after the newest) and rotate."
    )


@functools.lru_cache(maxsize=4096)
def _decrypt(keys: tuple[str, ...], token: str) -> str:
    # Cached per key set: snapshots of every tenant's view rebuild from the same rows after each change.
    try:
        return _keyring(keys).decrypt(token.encode()).decode()
    except InvalidToken:
        raise _unreadable() from None


def unseal(stored):
    """The plain value of a stored one (values that are not sealed come back as they are)."""
    if not is_sealed(stored):
        return stored
    return json.loads(_decrypt(configured_keys(), stored[ENVELOPE]))


def reseal(stored) -> dict:
    """The same secret encrypted with the newest key."""
    try:
        return {ENVELOPE: keyring().rotate(stored[ENVELOPE].encode()).decode()}
    except InvalidToken:
        raise _unreadable() from None


def opens(stored) -> bool:
    """Some configured key decrypts it."""
    try:
        keyring().decrypt(stored[ENVELOPE].encode())
    except InvalidToken:
        return False
    return True


def sealed_with_newest(stored) -> bool:
    keys = configured_keys()
    try:
        Fernet(keys[0]).decrypt(stored[ENVELOPE].encode())
    except (InvalidToken, IndexError, ValueError):
        return False
    return True


def generate_key() -> str:
    return Fernet.generate_key().decode()
