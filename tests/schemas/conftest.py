"""A throwaway tenant app, `courtside_probe`, living in a temp dir, so no test writes into a real app.

It is installed (INSTALLED_APPS and TENANT_APPS) only for the test that asks
for it, through the `settings` fixture; its migrations folder is rewritten at
the start of each test, and whatever it created in the test schemas (tables,
django_migrations rows) is removed afterwards, so tests pass in any order.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from django.db import connection
from django_tenants.utils import schema_context

PROBE = "courtside_probe"
TABLE = "courtside_probe_gadget"

FILES = {
    "__init__.py": "",
    "apps.py": """
        from django.apps import AppConfig


        class ProbeConfig(AppConfig):
            name = "courtside_probe"
            default_auto_field = "django.db.models.BigAutoField"
    """,
    "models.py": """
        from django.db import models


        class Gadget(models.Model):
            name = models.CharField(max_length=50)
    """,
    "migrations/__init__.py": "",
}

MIGRATIONS = {
    "0001_initial": """
        from django.db import migrations, models


        class Migration(migrations.Migration):
            initial = True
            dependencies = []
            operations = [
                migrations.CreateModel(
                    name="Gadget",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False)),
                        ("name", models.CharField(max_length=50)),
                    ],
                ),
            ]
    """,
    "0002_gadget_size": """
        from django.db import migrations, models


        class Migration(migrations.Migration):
            dependencies = [("courtside_probe", "0001_initial")]
            operations = [migrations.AddField("gadget", "size", models.IntegerField(default=0))]
    """,
    # Fails in any schema where two gadgets share a name.
    "0003_unique_name": """
        from django.db import migrations


        class Migration(migrations.Migration):
            dependencies = [("courtside_probe", "0002_gadget_size")]
            operations = [
                migrations.RunSQL(
                    "ALTER TABLE courtside_probe_gadget ADD CONSTRAINT probe_gadget_name_unique UNIQUE (name)",
                    reverse_sql="ALTER TABLE courtside_probe_gadget DROP CONSTRAINT probe_gadget_name_unique",
                ),
            ]
    """,
}


class Probe:
    """Handle on the throwaway app: write or delete its migrations, inspect schemas."""

    def __init__(self, root: Path):
        self.root = root
        self.migrations = root / PROBE / "migrations"

    def _forget_modules(self):
        shutil.rmtree(self.migrations / "__pycache__", ignore_errors=True)
        for name in [m for m in sys.modules if m.startswith(f"{PROBE}.migrations.")]:
            del sys.modules[name]

    def reset(self, *names: str) -> None:
        for path in self.migrations.glob("0*.py"):
            path.unlink()
        for name in names:
            self.write(name, MIGRATIONS[name])

    def write(self, name: str, source: str) -> Path:
        path = self.migrations / f"{name}.py"
        path.write_text(textwrap.dedent(source).lstrip())
        self._forget_modules()
        return path

    def delete(self, name: str) -> None:
        (self.migrations / f"{name}.py").unlink()
        self._forget_modules()

    def path(self, name: str) -> Path:
        return self.migrations / f"{name}.py"

    @staticmethod
    def columns(schema: str) -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
                [schema, TABLE],
            )
            return {row[0] for row in cursor.fetchall()}

    @staticmethod
    def applied(schema: str) -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute(f'SELECT name FROM "{schema}".django_migrations WHERE app = %s', [PROBE])
            return {row[0] for row in cursor.fetchall()}

    @staticmethod
    def execute(schema: str, sql: str, params=None) -> None:
        with schema_context(schema), connection.cursor() as cursor:
            cursor.execute(sql, params)


@pytest.fixture(scope="session")
def probe_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe_app")
    for relative, source in FILES.items():
        path = root / PROBE / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip())
    sys.path.insert(0, str(root))
    yield root
    sys.path.remove(str(root))


def _scrub_probe() -> None:
    """Remove what the probe app left in every schema: its table and its django_migrations rows."""
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relname = 'django_migrations'"
        )
        for (schema,) in cursor.fetchall():
            cursor.execute(f'DROP TABLE IF EXISTS "{schema}".{TABLE} CASCADE')
            cursor.execute(f'DELETE FROM "{schema}".django_migrations WHERE app = %s', [PROBE])
        cursor.execute("DELETE FROM schemas_migrationrecord WHERE app_label = %s", [PROBE])


@pytest.fixture
def probe(probe_root, settings, transactional_db, two_tenants):
    """The probe app installed as a tenant app, with 0001 on disk and nothing applied anywhere."""
    _scrub_probe()
    handle = Probe(probe_root)
    handle.reset("0001_initial")
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, PROBE]
    settings.TENANT_APPS = [*settings.TENANT_APPS, PROBE]
    yield handle
    _scrub_probe()
    handle.reset()


@pytest.fixture
def probe_db(probe_root, settings, db, two_tenants):
    """The probe app for tests inside one rolled-back transaction (nothing is committed)."""
    handle = Probe(probe_root)
    handle.reset("0001_initial")
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, PROBE]
    settings.TENANT_APPS = [*settings.TENANT_APPS, PROBE]
    yield handle
    handle.reset()
