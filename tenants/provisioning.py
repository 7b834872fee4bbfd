"""Tenant schemas: made ready ahead of need in a pool, renamed on sign-up, seeded with the NBA reference data.

Creating a tenant the stock way runs every tenant migration (about a second).
Instead a few schemas are kept ready, migrated by the very same migrations and
loaded with the schema seeds (the tenant apps' starting data: the 30 NBA teams
and the players list), and a sign-up renames one (`ALTER SCHEMA ... RENAME`, a
catalog update of a few ms). Each pooled schema records a fingerprint of the
tenant migrations and the seeds' files on disk when it was built; a sign-up
only takes a schema whose fingerprint matches the current one, so after a new
migration or new reference data no tenant can get a stale schema: stale pool
entries are dropped and rebuilt by `pool_refill`, which the cluster runs after
each sign-up and on a schedule. With no fresh pooled schema, the sign-up
migrates and seeds a new schema itself: slower, the same result.

Every rename of a schema goes through `schema_rename`, which moves the
migration ledger's rows with it in the same transaction.
"""

from __future__ import annotations

import hashlib
import importlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import schema_context

from core.locks import advisory_lock, lock_key
from schemas.ledger import ledger_schema_forget, ledger_schema_rename
from tenants.models import PooledSchema

POOL_PREFIX = "_pool_"
DUPLICATE_SCHEMA = "42P06"  # PostgreSQL's SQLSTATE for "schema already exists"


# -- schema seeds: what every new tenant schema starts with besides its tables ---------------------------


@dataclass(frozen=True)
class SchemaSeed:
    name: str
    load: Callable[[], object]  # runs inside the new schema, in the provisioning transaction
    files: Callable[[], list[Path]]  # what the data is built from: part of the pool fingerprint


_seeds: dict[str, SchemaSeed] = {}


def schema_seed_register(*, name: str, load: Callable[[], object], files: Callable[[], list[Path]]) -> None:
    """Add starting data for every new tenant schema (a tenant app calls this from its AppConfig.ready())."""
    _seeds[name] = SchemaSeed(name=name, load=load, files=files)


def schema_seeds_load(*, schema_name: str) -> None:
    """Load every registered seed into a new schema (a pooled one, or one a sign-up migrated in place)."""
    with schema_context(schema_name):
        for seed in _seeds.values():
            seed.load()


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


def pool_fingerprint() -> str:
    """SHA-256 over what a pooled schema is built from: the tenant apps' migration files and the seeds' files.

    Cached by the files' names, sizes and modification times, so a sign-up
    stats the files instead of reading them all.
    """
    files = [(f"{path.parent.parent.name}/{path.name}", path)
             for folder in tenant_apps_migration_dirs() for path in sorted(folder.glob("[0-9]*.py"))]
    files += [(f"seed {seed.name}/{path.name}", Path(path)) for seed in _seeds.values() for path in seed.files()]
    key = tuple((label, str(path), stat.st_size, stat.st_mtime_ns) for label, path in files for stat in [path.stat()])
    if key not in _fingerprints:
        digest = hashlib.sha256()
        for label, path in files:
            digest.update(f"{label}\0".encode())
            digest.update(path.read_bytes())
        _fingerprints[key] = digest.hexdigest()
    return _fingerprints[key]


def pool_counts() -> tuple[int, int]:
    """(ready, stale): pooled schemas a sign-up can take now, and those built from other files, awaiting a refill."""
    fingerprint = pool_fingerprint()
    total = PooledSchema.objects.count()
    ready = PooledSchema.objects.filter(fingerprint=fingerprint).count()
    return ready, total - ready


def _migrate_new_schema(schema_name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE SCHEMA "{schema_name}"')
    call_command("migrate_schemas", tenant=True, schema_name=schema_name, interactive=False, verbosity=0)
    connection.set_schema_to_public()


def pool_add(*, fingerprint: str | None = None) -> PooledSchema:
    """Build one pooled schema: run the tenant migrations into it, then load the schema seeds."""
    fingerprint = fingerprint or pool_fingerprint()
    schema_name = f"{POOL_PREFIX}{secrets.token_hex(6)}"
    with transaction.atomic():
        _migrate_new_schema(schema_name)
        schema_seeds_load(schema_name=schema_name)
        return PooledSchema.objects.create(schema_name=schema_name, fingerprint=fingerprint)


def pool_drop_stale(*, fingerprint: str | None = None) -> int:
    """Drop pooled schemas built from other migrations or seed files than those on disk now, ledger rows too."""
    fingerprint = fingerprint or pool_fingerprint()
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
            ledger_schema_forget(schema_name=locked.schema_name)
            locked.delete()
            dropped += 1
    return dropped


POOL_REFILL_LOCK = lock_key("pool-refill")  # one refill at a time across processes (core.locks)


def pool_refill(*, size: int | None = None, progress=None) -> dict:
    """Drop stale pooled schemas, then build fresh ones up to `size` (TENANT_POOL_SIZE).

    Two refills at once (two sign-ups, two cluster workers) would both see the
    pool short and overfill it; the second one returns at once instead.
    """
    size = settings.TENANT_POOL_SIZE if size is None else size
    with advisory_lock("pool-refill", wait=False) as acquired:
        if not acquired:
            return {"dropped": 0, "added": 0, "size": PooledSchema.objects.count(), "skipped": True}
        fingerprint = pool_fingerprint()
        dropped = pool_drop_stale(fingerprint=fingerprint)
        added = 0
        while PooledSchema.objects.filter(fingerprint=fingerprint).count() < size:
            pool_add(fingerprint=fingerprint)
            added += 1
            if progress:
                progress(added)
        return {"dropped": dropped, "added": added, "size": PooledSchema.objects.count()}


def schema_rename(*, old_name: str, new_name: str) -> None:
    """`ALTER SCHEMA ... RENAME`, and the migration ledger's rows with it; every schema rename goes through here.

    Must run inside the caller's transaction, which also changes whatever else
    names the schema (the pool row, the tenant row).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("schema_rename() must run inside the transaction that renames the schema's owner too.")
    quote = connection.ops.quote_name
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER SCHEMA {quote(old_name)} RENAME TO {quote(new_name)}")
    except DatabaseError as error:
        if getattr(error.__cause__, "sqlstate", None) == DUPLICATE_SCHEMA:  # taken meanwhile by a concurrent rename
            raise ValidationError({"schema_name": f"A schema named {new_name!r} already exists."}) from error
        raise
    ledger_schema_rename(old_name=old_name, new_name=new_name)


def pool_claim(*, schema_name: str) -> bool:
    """Rename a fresh pooled schema (migrated and seeded) to `schema_name`; False when none is ready.

    Must run inside the caller's transaction: if the sign-up fails later, the
    rename, its ledger rows and the pool row's deletion roll back with it.
    """
    pooled = (
        PooledSchema.objects.select_for_update(skip_locked=True)
        .filter(fingerprint=pool_fingerprint())
        .order_by("created_at")
        .first()
    )
    if pooled is None:
        return False
    schema_rename(old_name=pooled.schema_name, new_name=schema_name)
    pooled.delete()
    return True


def tenant_schema_provide(*, tenant) -> bool:
    """Save a new tenant with its schema ready: a pooled one renamed, else one migrated and seeded here.

    Either way the schema has every tenant migration, the seeds and its own
    ledger history. Returns True when the schema came from the pool. Runs
    inside the caller's transaction (tenants.services.tenant_create).
    """
    if pool_claim(schema_name=tenant.schema_name):
        tenant.auto_create_schema = False  # the renamed pooled schema is migrated and seeded already
        tenant.save(verbosity=0)
        return True
    # Rows a dropped schema of the same name left must not pose as this one's history.
    ledger_schema_forget(schema_name=tenant.schema_name)
    tenant.save(verbosity=0)  # django-tenants creates the schema and runs every tenant migration
    schema_seeds_load(schema_name=tenant.schema_name)
    return False
