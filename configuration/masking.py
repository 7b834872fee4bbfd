"""Which configuration keys are secret, and masking of values by key."""

from __future__ import annotations

import re

from backoffice.logging import MASK

# A key segment that names a credential: password, api_token, signing_key, stripe_secret...
SECRET_SEGMENT = re.compile(
    r"(^|_)(password|passwd|passphrase|pass|token|secret|key|apikey|signature|credentials?)(_|$)", re.IGNORECASE
)


def key_looks_secret(key: str) -> bool:
    return any(SECRET_SEGMENT.search(segment) for segment in key.split("."))


def is_secret(key: str, secret_keys=frozenset()) -> bool:
    """Secret by name, or at or under a key marked secret (schema or entry)."""
    if key_looks_secret(key):
        return True
    parts = key.split(".")
    return any(".".join(parts[:i]) in secret_keys for i in range(1, len(parts) + 1))


def mask(key: str, value, secret_keys=frozenset()):
    """The value with every secret part replaced by the mask; dicts are walked."""
    if is_secret(key, secret_keys):
        return MASK if value not in (None, "") else value
    if isinstance(value, dict):
        return {k: mask(f"{key}.{k}" if key else k, v, secret_keys) for k, v in value.items()}
    return value
