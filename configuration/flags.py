"""Feature flags: a boolean, or {enabled, tenants, percentage} decided by a stable hash of flag and tenant."""

from __future__ import annotations

import hashlib

from configuration.layers import PUBLIC


def flag_bucket(name: str, schema_name: str) -> float:
    """A tenant's stable place in [0, 100) for a flag: the same on every process and every day."""
    digest = hashlib.sha256(f"{name}:{schema_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000 / 100


def evaluate_flag(name: str, spec, schema_name: str) -> bool:
    """A flag is a boolean, or {enabled, tenants, percentage}.

    enabled false turns it off for everyone; a listed tenant is on; the others
    are on when their bucket falls under the percentage (100 by default when
    no tenant is listed, 0 when some are).
    """
    if isinstance(spec, bool):
        return spec
    if not isinstance(spec, dict) or not spec.get("enabled", False):
        return False
    tenants = spec.get("tenants") or []
    if schema_name in tenants:
        return True
    percentage = spec.get("percentage", 0 if tenants else 100)
    if schema_name == PUBLIC:
        return percentage >= 100
    return flag_bucket(name, schema_name) < percentage
