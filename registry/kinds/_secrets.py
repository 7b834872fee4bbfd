"""A check's secret (a DSN with its password): sealed at rest with the configuration's keys, never shown."""

from __future__ import annotations

from configuration import sealing


def seal(value: str) -> dict:
    """What HealthCheck.secret stores: {"$fernet": token} (COURTSIDE_SECRET_KEYS, rotated with the rest)."""
    return sealing.seal(value)


def unseal(stored) -> str:
    return sealing.unseal(stored) if stored else ""
