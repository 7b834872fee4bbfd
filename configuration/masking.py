"""Which configuration keys are secret, and masking of values by key, at any depth (dicts and lists)."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from core.masking import MASK

# A key segment that names a credential: password, api_token, signing_key, stripe_secret...
SECRET_SEGMENT = re.compile(
    r"(^|_)(password|passwd|passphrase|pass|token|secret|key|apikey|signature|credentials?)(_|$)", re.IGNORECASE
)
# What unmask() is given when nothing is stored at a place (None is a value).
NOTHING_STORED = object()


def key_looks_secret(key: str) -> bool:
    return any(SECRET_SEGMENT.search(segment) for segment in key.split("."))


def is_secret(key: str, secret_keys=frozenset()) -> bool:
    """Secret by name, or at or under a key marked secret (schema or entry)."""
    if key_looks_secret(key):
        return True
    parts = key.split(".")
    return any(".".join(parts[:i]) in secret_keys for i in range(1, len(parts) + 1))


def _child(key: str, name) -> str:
    return f"{key}.{name}" if key else str(name)


def mask(key: str, value, secret_keys=frozenset()):
    """The value with every secret part replaced by the mask; dicts and lists are walked.

    An item of a list is judged under the list's key: the password in
    `integrations.backups: [{host, password}]` is `integrations.backups.password`.
    """
    if is_secret(key, secret_keys):
        return MASK if value not in (None, "") else value
    if isinstance(value, dict):
        return {k: mask(_child(key, k), v, secret_keys) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(key, item, secret_keys) for item in value]
    return value


def holds_secret(key: str, value, secret_keys=frozenset()) -> bool:
    """The value is, or holds somewhere inside it, a secret: what is never stored or shown in clear."""
    return mask(key, value, secret_keys) != value


def unmask(key: str, value, stored=NOTHING_STORED, secret_keys=frozenset()):
    """The value with each mask at a secret place replaced by what `stored` holds at the same place.

    Places are dict keys and list positions, so a form or an export sent back
    with its masks keeps every secret; a mask where nothing is stored is refused
    (it would otherwise be saved as the password "********").
    """
    if value == MASK and is_secret(key, secret_keys):
        if stored is NOTHING_STORED:
            raise ValidationError(
                {"value": [f"{key}: {MASK} stands for a kept secret, but there is no stored secret at this place; "
                           "send the real value."]}
            )
        return stored
    if isinstance(value, dict):
        kept = stored if isinstance(stored, dict) else {}
        return {k: unmask(_child(key, k), v, kept.get(k, NOTHING_STORED), secret_keys) for k, v in value.items()}
    if isinstance(value, list):
        kept = stored if isinstance(stored, list) else []
        return [unmask(key, item, kept[i] if i < len(kept) else NOTHING_STORED, secret_keys)
                for i, item in enumerate(value)]
    return value
