"""Shared fixtures: the public site, two tenants prepared once per session, tenant clients.

Tenant schemas are created once per test session (creating one runs every
tenant migration) and reused; each test runs in a transaction that is rolled
back, tenant schemas included, since PostgreSQL DDL and DML are transactional.
Transactional tests (live server, task cluster) commit for real: after each
of them the test tenants' tables are truncated and stray schemas dropped, so
nothing leaks into the next test or the next run (--reuse-db included).
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.signals import setting_changed
from django.db import connection
from django.dispatch import receiver
from django.test import Client
from django_tenants.utils import schema_context

TEST_TENANTS = {"lakers": "Los Angeles Lakers", "warriors": "Golden State Warriors"}
PUBLIC_HOST = "localhost"


@receiver(setting_changed, dispatch_uid="tests.tenant_storage_follows_media_root")
def _tenant_storage_follows_media_root(setting, **kwargs):
    """A test that overrides MEDIA_ROOT gets it in django-tenants' storage too.

    TenantFileSystemStorage caches the MEDIA_ROOT it first saw (relative_media_root)
    and forgets it only when MULTITENANT_RELATIVE_MEDIA_ROOT changes, so such a
    test passed or failed with the order of the tests before it.
    """
    if setting in ("MEDIA_ROOT", "MEDIA_URL"):
        from django.core.files.storage import default_storage

        for name in ("relative_media_root", "relative_media_url"):
            default_storage.__dict__.pop(name, None)
            if getattr(default_storage, "_wrapped", None) is not None:
                vars(default_storage._wrapped).pop(name, None)


def _flush_retrying_on_live_writers() -> None:
    """A transactional test's flush, retried when a live server process of the test run fights it.

    Modules that start real web servers or clusters (tests/deploy, the registry's live tests) keep them up
    across their tests, so each test's flush meets their writes: a heartbeat's transaction and the flush's
    TRUNCATE deadlock, or the flush's post_migrate re-creates a content type that a server process's
    `ContentType.objects.get_for_model` has just re-created. Either way the flush rolled back whole (it
    runs in one transaction; post_migrate's inserts are each atomic), so running it again is safe.
    Production never flushes; this is the test harness's race, not the product's.
    """
    import time

    from django.core.management.base import CommandError
    from django.db import DatabaseError
    from django.test.testcases import TransactionTestCase

    flush_once = TransactionTestCase._fixture_teardown

    def flush(self):
        for attempt in range(4):
            try:
                return flush_once(self)
            except (CommandError, DatabaseError):
                if attempt == 3:
                    raise
                time.sleep(0.2 * (attempt + 1))

    TransactionTestCase._fixture_teardown = flush


_flush_retrying_on_live_writers()


def database_url(settings_dict: dict | None = None) -> str:
    """A DATABASE_URL for a subprocess to reach the current (test) database, socket or TCP."""
    from core.embedded_db import url_from_settings

    return url_from_settings(settings_dict or connection.settings_dict)


def connection_params() -> dict:
    """Keyword arguments for psycopg.connect() to the current (test) database, socket or TCP."""
    connection.ensure_connection()
    params = connection.get_connection_params()
    return {key: params[key] for key in ("dbname", "user", "password", "host", "port") if params.get(key)}


def tenant_host(schema_name: str) -> str:
    return f"{schema_name}.localhost"


def _drop_stray_schemas() -> None:
    """Drop schemas no test tenant owns: what a committed test created and a flush orphaned."""
    keep = {"public", "information_schema", *TEST_TENANTS}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%%' AND nspname <> ALL(%s)",
            [list(keep)],
        )
        for (schema,) in cursor.fetchall():
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


def ensure_test_tenants() -> None:
    """Rows for the public site and the test tenants; schemas made only if missing."""
    from tenants import services
    from tenants.models import Domain, Plan, Tenant

    connection.set_schema_to_public()
    if not Plan.objects.exists():  # seeded by a data migration, wiped by a transactional test's flush
        import importlib

        from django.apps import apps

        importlib.import_module("tenants.migrations.0002_plans_and_quota_functions").seed_plans(apps, None)
        from tenants.models import TASK_LIMITS_BY_PLAN  # what tenants 0007_task_limits wrote, re-applied

        for code, limits in TASK_LIMITS_BY_PLAN.items():
            Plan.objects.filter(code=code).update(**limits)
    services.public_tenant_ensure(domains=[PUBLIC_HOST, "testserver", "127.0.0.1"])
    for schema_name, name in TEST_TENANTS.items():
        if not Tenant.objects.filter(schema_name=schema_name).exists():
            tenant = Tenant(schema_name=schema_name, name=name, plan=Plan.objects.get(code="PROFESSIONAL"))
            tenant.save(verbosity=0)  # create_schema(check_if_exists=True) keeps an existing schema
            Domain.objects.create(domain=tenant_host(schema_name), tenant=tenant, is_primary=True)


def _truncate_tenant_tables() -> None:
    """Empty every table of the test tenants (their migration history kept): one catalog query, one TRUNCATE."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname = ANY(%s) AND tablename <> 'django_migrations'"
            " ORDER BY schemaname, tablename",
            [list(TEST_TENANTS)],
        )
        tables = [f'"{schema_name}"."{name}"' for schema_name, name in cursor.fetchall()]
        if tables:
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        _drop_stray_schemas()
        ensure_test_tenants()


@pytest.fixture(autouse=True)
def _public_schema_between_tests(request, django_db_blocker):
    """Every test starts in public; transactional tests leave nothing behind."""
    marker = request.node.get_closest_marker("django_db")
    transactional = bool({"transactional_db", "live_server"} & set(request.fixturenames)) or bool(
        marker and (marker.kwargs.get("transaction") or (marker.args and marker.args[0]))
    )
    uses_db = transactional or marker is not None or "db" in request.fixturenames
    if uses_db:
        # Set the database up first, so its teardown (a transactional test's flush) runs before ours.
        request.getfixturevalue("transactional_db" if transactional else "db")
        connection.set_schema_to_public()
        # A transactional test's flush (which may run after this fixture's teardown) wipes
        # the public rows of the test tenants; put them back before each test.
        ensure_test_tenants()
    yield
    if transactional:
        # pytest-django has blocked the database again by now; the cleanup needs it.
        with django_db_blocker.unblock():
            connection.set_schema_to_public()
            ensure_test_tenants()
            _truncate_tenant_tables()
            _drop_stray_schemas()
        # The flush emptied the configuration tables without a NOTIFY: forget this process's snapshots.
        from configuration import config

        config.invalidate()


@pytest.fixture
def public_tenant(db):
    from tenants.models import Tenant

    ensure_test_tenants()
    return Tenant.objects.get(schema_name="public")


def _tenant(schema_name):
    from tenants.models import Tenant

    ensure_test_tenants()
    return Tenant.objects.get(schema_name=schema_name)


@pytest.fixture
def tenant(db):
    """One prepared tenant (the Lakers)."""
    return _tenant("lakers")


@pytest.fixture
def tenant_lakers(db):
    return _tenant("lakers")


@pytest.fixture
def tenant_warriors(db):
    return _tenant("warriors")


@pytest.fixture
def two_tenants(tenant_lakers, tenant_warriors):
    return tenant_lakers, tenant_warriors


class TenantClient(Client):
    """A test client bound to one host; it restores the test's schema after every request.

    django-tenants' middleware switches the shared connection to the request's
    tenant and leaves it there; without the restore, a test's next ORM call
    would silently run in that tenant's schema.
    """

    def __init__(self, host: str, **defaults):
        super().__init__(HTTP_HOST=host, **defaults)
        self.host = host

    def request(self, **request):
        previous = connection.tenant
        try:
            return super().request(**request)
        finally:
            connection.set_tenant(previous) if previous is not None else connection.set_schema_to_public()

    def login_user(self, user, schema_name: str):
        """Log in a user of a schema: the session row is written into that schema."""
        with schema_context(schema_name):
            self.force_login(user)


def make_user(schema_name: str, *, username: str = "coach", staff: bool = True, superuser: bool = False,
              password: str = "pass-word-123"):
    with schema_context(schema_name):
        model = get_user_model()
        if superuser:
            return model.objects.create_superuser(username=username, email=f"{username}@x.test", password=password)
        return model.objects.create_user(username=username, password=password, is_staff=staff)


@pytest.fixture
def tenant_client_factory(db):
    def factory(schema_name: str, *, logged_in: bool = True, superuser: bool = True) -> TenantClient:
        client = TenantClient(tenant_host(schema_name))
        if logged_in:
            user = make_user(schema_name, username=f"{schema_name}_admin", superuser=superuser)
            client.login_user(user, schema_name)
            client.user = user
        return client

    return factory


@pytest.fixture
def lakers_client(tenant_lakers, tenant_client_factory):
    return tenant_client_factory("lakers")


@pytest.fixture
def warriors_client(tenant_warriors, tenant_client_factory):
    return tenant_client_factory("warriors")


@pytest.fixture
def operator_client(public_tenant):
    client = TenantClient(PUBLIC_HOST)
    user = make_user("public", username="operator", superuser=True)
    client.login_user(user, "public")
    client.user = user
    return client


@pytest.fixture(scope="session")
def live_server(request):
    """pytest-django's live server, with a listen backlog deep enough for 200 simultaneous clients."""
    from django.core.servers.basehttp import ThreadedWSGIServer
    from pytest_django.live_server_helper import LiveServer

    class DeepBacklogServer(ThreadedWSGIServer):
        request_queue_size = 512

    server = LiveServer("localhost", start=False)
    server.thread.server_class = DeepBacklogServer
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_tenant_url(live_server):
    """(base_url, headers) for real HTTP to a tenant's host through the live server."""

    def for_host(schema_name: str | None):
        host = PUBLIC_HOST if schema_name in (None, "public") else tenant_host(schema_name)
        return live_server.url, {"Host": host}

    return for_host
