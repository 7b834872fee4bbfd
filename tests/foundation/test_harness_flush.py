"""The test harness's cleanup after a transactional test (tests/conftest.py): every table empty but the test sites.

Its flush truncates only the tables holding rows and keeps the content types and permissions while they are
the rows post_migrate wrote; these tests hold it to the end state of Django's flush plus the conftest's own
steps (the test sites put back, the test tenants' tables emptied with their sequences restarted).
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import TransactionTestCase
from django_tenants.utils import schema_context

from tests.conftest import TEST_TENANTS, _truncate_tenant_tables, ensure_test_tenants, make_user

pytestmark = pytest.mark.django_db(transaction=True)

# The test sites' rows, and the audit log's entries of their creation (tenants and domains are audited).
SITE_TABLES = {"tenants_plan", "tenants_tenant", "tenants_domain", "auditlog_logentry"}


class _Case(TransactionTestCase):
    databases = {"default"}

    def runTest(self):  # noqa: N802
        pass


def _cleanup() -> None:
    """What runs after a transactional test: the flush, then the conftest's teardown steps."""
    _Case()._fixture_teardown()
    connection.set_schema_to_public()
    ensure_test_tenants()
    _truncate_tenant_tables()


def _write_rows() -> None:
    make_user("public", username="operator-x", superuser=True)
    for schema_name in TEST_TENANTS:
        make_user(schema_name, username="coach-a")
        make_user(schema_name, username="coach-b")


def _tables_with_rows(schema_name: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema_name])
        names = [name for (name,) in cursor.fetchall()]
        holding = set()
        for name in names:
            cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{schema_name}"."{name}")')
            if cursor.fetchone()[0]:
                holding.add(name)
    return holding


def _assert_clean() -> None:
    public = _tables_with_rows("public") - SITE_TABLES - {"django_migrations", "django_content_type", "auth_permission"}
    assert public == set(), f"public tables left with rows: {sorted(public)}"
    from auditlog.models import LogEntry

    assert set(LogEntry.objects.values_list("content_type__app_label", flat=True)) <= {"tenants"}
    assert ContentType.objects.filter(app_label="auth", model="user").exists()
    assert Permission.objects.filter(codename="add_user", content_type__app_label="auth").exists()
    for schema_name in TEST_TENANTS:
        left = _tables_with_rows(schema_name) - {"django_migrations"}
        assert left == set(), f"{schema_name} tables left with rows: {sorted(left)}"
        with schema_context(schema_name):
            # RESTART IDENTITY: the sequences of the tenants' tables start again
            assert get_user_model().objects.create_user(username="first", password="x").pk == 1
            get_user_model().objects.all().delete()
    _truncate_tenant_tables()


def test_after_a_transactional_test_only_the_test_sites_have_rows_and_ids_start_again():
    for _ in range(3):  # the first may be Django's own flush; the later ones take the fast path
        _write_rows()
        _cleanup()
        _assert_clean()


def test_a_permission_a_test_deleted_is_back_after_the_cleanup():
    _write_rows()
    _cleanup()
    Permission.objects.filter(codename="add_user", content_type__app_label="auth").delete()
    _write_rows()
    _cleanup()
    _assert_clean()
