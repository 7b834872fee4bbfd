"""Fast provisioning from a pool of pre-migrated schemas, never stale after a new migration."""

import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from django.db import connection

from tenants import provisioning, services
from tenants.models import PooledSchema

LEAGUE_MIGRATIONS = Path(__file__).resolve().parents[2] / "league" / "migrations"


def _columns(schema, table):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [schema, table],
        )
        return {row[0] for row in cursor.fetchall()}


def test_a_sign_up_takes_a_pooled_schema_by_renaming_it(public_tenant):
    pooled = provisioning.pool_add()

    services.tenant_create(name="Miami Heat", schema_name="heat")

    assert not PooledSchema.objects.exists()
    assert "player_id" in _columns("heat", "league_playergamestat")
    assert not _columns(pooled.schema_name, "league_playergamestat")  # renamed away, not copied


def test_the_pool_refills_to_its_size_and_reserved_names_are_refused(public_tenant):
    result = provisioning.pool_refill(size=2)
    assert result["added"] == 2 and PooledSchema.objects.count() == 2
    assert provisioning.pool_refill(size=2)["added"] == 0
    with pytest.raises(Exception, match="reserved"):
        services.tenant_create(name="x", schema_name=PooledSchema.objects.first().schema_name)


def test_a_tenant_created_after_a_new_migration_has_it(public_tenant, tmp_path, settings):
    stale = provisioning.pool_add()  # built before the deploy
    package = tmp_path / "probe_league_migrations"
    shutil.copytree(LEAGUE_MIGRATIONS, package, ignore=shutil.ignore_patterns("__pycache__"))
    latest = sorted(p.stem for p in package.glob("0*.py"))[-1]
    (package / "0099_team_arena.py").write_text(textwrap.dedent(f"""
        from django.db import migrations

        class Migration(migrations.Migration):
            dependencies = [("league", "{latest}")]
            operations = [migrations.RunSQL(
                "ALTER TABLE league_team ADD COLUMN arena varchar(64)",
                "ALTER TABLE league_team DROP COLUMN arena",
            )]
    """))
    sys.path.insert(0, str(tmp_path))
    try:
        settings.MIGRATION_MODULES = {"league": "probe_league_migrations"}
        assert provisioning.pool_fingerprint() != stale.fingerprint

        services.tenant_create(name="Chicago Bulls", schema_name="bulls")
        assert "arena" in _columns("bulls", "league_team")
        assert PooledSchema.objects.filter(pk=stale.pk).exists()  # the stale schema was not handed out

        refill = provisioning.pool_refill(size=1)
        assert refill == {"dropped": 1, "added": 1, "size": 1}
        fresh = PooledSchema.objects.get()
        assert "arena" in _columns(fresh.schema_name, "league_team")
        services.tenant_create(name="Utah Jazz", schema_name="jazz")
        assert "arena" in _columns("jazz", "league_team")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m.startswith("probe_league_migrations")]:
            del sys.modules[name]


def test_a_second_concurrent_refill_steps_aside(public_tenant):
    import psycopg

    # Another process's refill holds the lock: a second connection of our own.
    other = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [provisioning.POOL_REFILL_LOCK])
        assert provisioning.pool_refill(size=1)["skipped"] is True
        assert not PooledSchema.objects.exists()
        other.execute("SELECT pg_advisory_unlock(%s)", [provisioning.POOL_REFILL_LOCK])
    finally:
        other.close()
    assert provisioning.pool_refill(size=1)["added"] == 1
