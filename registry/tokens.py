"""Service tokens: a service's credential, created or rotated; only its SHA-256 is kept."""

from __future__ import annotations

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction

from registry import selectors
from registry.inputs import text
from registry.models import ServiceToken, service_name_validator

TOKEN_PREFIX = "cs_svc_"


# --- tokens -----------------------------------------------------------------------------------------------------


@transaction.atomic
def token_create(*, service_name: str, rotate: bool = False) -> tuple[ServiceToken, str]:
    """A new token for a service; returns (row, plaintext). The plaintext is never stored or shown again."""
    service_name = text(service_name, field_name="service_name")
    try:
        service_name_validator(service_name)
    except ValidationError as error:
        raise ValidationError({"service_name": error.messages}) from error
    existing = ServiceToken.objects.select_for_update().filter(service_name=service_name).first()
    if existing and not rotate:
        raise ValidationError({"service_name": f"{service_name!r} already has a token; rotate it instead."})
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = existing or ServiceToken(service_name=service_name)
    token.token_hash = selectors.hash_token(plaintext)
    token.token_prefix = plaintext[: len(TOKEN_PREFIX) + 4]
    token.full_clean()
    token.save()
    selectors._token_cache.clear()  # this process forgets the old token at once; others within the cache time
    return token, plaintext
