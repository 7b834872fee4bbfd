"""Fast tenant provisioning from a pool of pre-migrated schemas.

Creating a tenant the stock way runs every tenant migration (hundreds of ms).
Instead a few empty schemas are kept ready, migrated by the very same
migrations, and a sign-up renames one (`ALTER SCHEMA ... RENAME`, a catalog
update of a few ms). Each pooled schema records a fingerprint of the tenant
migrations on disk when it was built; a sign-up only takes a schema whose
fingerprint matches the current one, so after a new migration no tenant can
get a stale schema: stale pool entries are dropped and rebuilt by
`pool_refill`, which the cluster runs after each sign-up and on a schedule.
"""

from __future__ import annotations

import hashlib
import importlib
import secrets
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader

from tenants.models import PooledSchema

POOL_PREFIX = "_pool_"


def tenant_apps_migration_dirs() -> list[Path]:
    """Where each tenant app's migrations live (MIGRATION_MODULES respected)."""
    dirs = []
    for app_path in settings.TENANT_APPS:
        config = next(c for c in apps.get_app_configs() if c.name == app_path)
        module_name, _ = MigrationLoader.migrations_module(config.label)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        dirs.append(Path(module.__file__).parent)
    return dirs


_fingerprints: dict[tuple, str] = {}


def migrations_fingerprint() -> str:
    """SHA-256 over the tenant apps' migration files (names and contents).

    Cached by the files' names, sizes and modification times, so a sign-up
    stats the files instead of reading them all.
    """
    files = [path for folder in tenant_apps_migration_dirs() for path in sorted(folder.glob("[0-9]*.py"))]
    key = tuple((str(path), stat.st_size, stat.st_mtime_ns) for path in files for stat in [path.stat()])
    if key not in _fingerprints:
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path.parent.parent.name}/{path.name}\0".encode())
            digest.update(path.read_bytes())
        _fingerprints[key] = digest.hexdigest()
    return _fingerprints[key]


def _migrate_new_schema(schema_name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema_name}"')
    call_command("migrate_schemas", tenant=True, schema_name=schema_name, interactive=False, verbosity=0)
    connection.set_schema_to_public()


def pool_add(*, fingerprint: str | None = None) -> PooledSchema:
    """Build one pooled schema by running the tenant migrations into it."""
    fingerprint = fingerprint or migrations_fingerprint()
    schema_name = f"{POOL_PREFIX}{secrets.token_hex(6)}"
    with transaction.atomic():
        _migrate_new_schema(schema_name)
        return PooledSchema.objects.create(schema_name=schema_name, fingerprint=fingerprint)


def pool_drop_stale(*, fingerprint: str | None = None) -> int:
    """Drop pooled schemas built with other migrations than those on disk now."""
    fingerprint = fingerprint or migrations_fingerprint()
    dropped = 0
    for pooled in PooledSchema.objects.exclude(fingerprint=fingerprint):
        with transaction.atomic():
            locked = PooledSchema.objects.select_for_update(skip_locked=True).filter(pk=pooled.pk).first()
            if locked is None:
                continue
            with connection.cursor() as cursor:
                # Fire deferred foreign-key checks first: DROP refuses tables with pending trigger events.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f'DROP SCHEMA IF EXISTS "{locked.schema_name}" CASCADE')
            locked.delete()
            dropped += 1
    return dropped


POOL_REFILL_LOCK = 1129270612  # pg advisory lock key: one refill at a time across processes


def pool_refill(*, size: int | None = None, progress=None) -> dict:
    """Drop stale pooled schemas, then build fresh ones up to `size` (TENANT_POOL_SIZE).

    Two refills at once (two sign-ups, two cluster workers) would both see the
    pool short and overfill it; the second one returns at once instead.
    """
    size = settings.TENANT_POOL_SIZE if size is None else size
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [POOL_REFILL_LOCK])
        if not cursor.fetchone()[0]:
            return {"dropped": 0, "added": 0, "size": PooledSchema.objects.count(), "skipped": True}
    try:
        fingerprint = migrations_fingerprint()
        dropped = pool_drop_stale(fingerprint=fingerprint)
        added = 0
        while PooledSchema.objects.filter(fingerprint=fingerprint).count() < size:
            pool_add(fingerprint=fingerprint)
            added += 1
            if progress:
                progress(added)
        return {"dropped": dropped, "added": added, "size": PooledSchema.objects.count()}
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [POOL_REFILL_LOCK])


def pool_claim(*, schema_name: str) -> bool:
    """Rename a fresh pooled schema to `schema_name`; False when none is ready.

    Must run inside the caller's transaction: if the sign-up fails later, the
    rename and the pool row's deletion roll back with it.
    """
    pooled = (
        PooledSchema.objects.select_for_update(skip_locked=True)
        .filter(fingerprint=migrations_fingerprint())
        .order_by("created_at")
        .first()
    )
    if pooled is None:
        return False
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER SCHEMA "{pooled.schema_name}" RENAME TO "{schema_name}"')
    pooled.delete()
    return True
