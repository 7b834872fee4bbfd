"""What every write of the registry shares: its event log, its shared counters, its lock classes."""

from __future__ import annotations

from django_tenants.utils import get_public_schema_name

from core.db import soft_write
from registry.models import RegistryCounter, RegistryEvent


def event(kind, *, instance=None, service_name="", service_id="", message="", detail=None) -> None:
    RegistryEvent.objects.create(
        kind=kind,
        service_name=instance.name if instance else service_name,
        service_id=instance.service_id if instance else service_id,
        message=message,
        detail=detail or {},
    )


def bump_index(name: str) -> int:
    return counter_next(f"index:{name}")


def public_table(model) -> str:
    """The model's table named with its schema: the hot paths below do not depend on the search_path."""
    return f'"{get_public_schema_name()}"."{model._meta.db_table}"'


def counter_next(key: str) -> int:
    """Increment a shared counter and return its new value, in one atomic statement."""
    table = public_table(RegistryCounter)
    return soft_write(
        f"INSERT INTO {table} AS counter (key, value) VALUES (%s, 1) "
        f"ON CONFLICT (key) DO UPDATE SET value = counter.value + 1 RETURNING value",
        [key],
    )[0]
