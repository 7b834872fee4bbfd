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


# What post_migrate wrote after the last full flush of this process: a digest of the content types and
# permissions (None until a full flush ran). While those rows are as it left them, a flush need not re-create them.
_post_migrate_rows: dict[str, str | None] = {"digest": None}

_POST_MIGRATE_DIGEST = (
    "SELECT (SELECT md5(coalesce(string_agg(id || ':' || app_label || '.' || model, ',' ORDER BY id), ''))"
    " FROM django_content_type),"
    " (SELECT md5(coalesce(string_agg(id || ':' || content_type_id || ':' || codename || ':' || name, ','"
    " ORDER BY id), '')) FROM auth_permission)"
)


def _non_empty(cursor, tables: list[str]) -> list[str]:
    """Those of `tables` (quoted, maybe schema-qualified names) that hold a row: one query for all of them."""
    if not tables:
        return []
    cursor.execute(" UNION ALL ".join(f"SELECT {i} WHERE EXISTS (SELECT 1 FROM {t})" for i, t in enumerate(tables)))
    return [tables[i] for (i,) in cursor.fetchall()]


def _flush_fast(testcase) -> bool:
    """A transactional test's flush that leaves the database as Django's does, in a fraction of its time.

    Django's flush truncates every table (an empty one costs a TRUNCATE as much as a full one: new files for
    the table and each index) and then sends post_migrate, which re-creates every content type and permission
    (about 0.8 s of the 1.5 s a flush took at load 6). Here only the tables that hold a row are truncated, and
    the content types and permissions are kept when they are exactly the rows the last full flush's post_migrate
    wrote (a digest of them); otherwise, or for any flush this does not cover, False: the caller runs Django's.
    Sequences are not reset either way (Django's flush between tests passes reset_sequences=False).
    """
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from django.db import connections, transaction

    if (
        _post_migrate_rows["digest"] is None
        or testcase.available_apps is not None
        or testcase.serialized_rollback
        or set(testcase._databases_names(include_mirrors=False)) != {"default"}
    ):
        return False
    db = connections["default"]
    if getattr(db, "schema_name", "public") != "public":
        return False  # Django's flush then works on that schema's tables, as it always did
    kept = {ContentType._meta.db_table, Permission._meta.db_table}
    with transaction.atomic(using="default"):
        with db.cursor() as cursor:
            cursor.execute(_POST_MIGRATE_DIGEST)
            if "|".join(cursor.fetchone()) != _post_migrate_rows["digest"]:
                return False
            tables = [
                db.ops.quote_name(name)
                for name in db.introspection.django_table_names(only_existing=True, include_views=False)
                if name not in kept
            ]
            holding_rows = _non_empty(cursor, tables)
            if holding_rows:
                # CASCADE: a table left out as empty may reference one truncated here (Django's flush names all).
                cursor.execute(f"TRUNCATE {', '.join(holding_rows)} CASCADE")
    return True


def _remember_post_migrate_rows() -> None:
    from django.db import connections

    db = connections["default"]
    if getattr(db, "schema_name", "public") != "public":
        _post_migrate_rows["digest"] = None
        return
    with db.cursor() as cursor:
        cursor.execute(_POST_MIGRATE_DIGEST)
        _post_migrate_rows["digest"] = "|".join(cursor.fetchone())


def _flush_retrying_on_live_writers() -> None:
    """A transactional test's flush, retried when a live server process of the test run fights it.

    Modules that start real web servers or clusters (tests/deploy, the registry's live tests) keep them up
    across their tests, so each test's flush meets their writes: a heartbeat's transaction and the flush's
    TRUNCATE deadlock, or the flush's post_migrate re-creates a content type that a server process's
    `ContentType.objects.get_for_model` has just re-created. Either way the flush rolled back whole (it
    runs in one transaction; post_migrate's inserts are each atomic), so running it again is safe.
    Production never flushes; this is the test harness's race, not the product's.
    The flush itself is _flush_fast when it applies, Django's otherwise.
    """
    import time

    from django.core.management.base import CommandError
    from django.db import DatabaseError
    from django.test.testcases import TransactionTestCase

    flush_once = TransactionTestCase._fixture_teardown

    def flush(self):
        for attempt in range(4):
            try:
                if _flush_fast(self):
                    return None
                result = flush_once(self)
                _remember_post_migrate_rows()
                return result
            except (CommandError, DatabaseError):
                _post_migrate_rows["digest"] = None
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


_PUBLIC_DOMAINS = [PUBLIC_HOST, "testserver", "127.0.0.1"]


def _test_tenants_present(Plan, Tenant, Domain) -> bool:  # noqa: N803 (the models)
    """Whether the plans, the public site with its domains and the test tenants are all there already."""
    schemas = ["public", *TEST_TENANTS]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {Plan._meta.db_table}),"
            f" (SELECT count(*) FROM {Tenant._meta.db_table} WHERE schema_name = ANY(%s)),"
            f" (SELECT count(*) FROM {Domain._meta.db_table} WHERE domain = ANY(%s))",
            [schemas, _PUBLIC_DOMAINS],
        )
        plans, tenants, domains = cursor.fetchone()
    return plans and tenants == len(schemas) and domains == len(_PUBLIC_DOMAINS)


def ensure_test_tenants() -> None:
    """Rows for the public site and the test tenants; schemas made only if missing."""
    from tenants import services
    from tenants.models import Domain, Plan, Tenant

    connection.set_schema_to_public()
    if _test_tenants_present(Plan, Tenant, Domain):
        return  # what the steps below would find, all there: one query instead of a dozen
    if not Plan.objects.exists():  # seeded by a data migration, wiped by a transactional test's flush
        import importlib

        from django.apps import apps

        importlib.import_module("tenants.migrations.0002_plans_and_quota_functions").seed_plans(apps, None)
        from tenants.models import TASK_LIMITS_BY_PLAN  # what tenants 0007_task_limits wrote, re-applied

        for code, limits in TASK_LIMITS_BY_PLAN.items():
            Plan.objects.filter(code=code).update(**limits)
    services.public_tenant_ensure(domains=_PUBLIC_DOMAINS)
    for schema_name, name in TEST_TENANTS.items():
        if not Tenant.objects.filter(schema_name=schema_name).exists():
            tenant = Tenant(schema_name=schema_name, name=name, plan=Plan.objects.get(code="PROFESSIONAL"))
            tenant.save(verbosity=0)  # create_schema(check_if_exists=True) keeps an existing schema
            Domain.objects.create(domain=tenant_host(schema_name), tenant=tenant, is_primary=True)


def _truncate_tenant_tables() -> None:
    """Empty every table of the test tenants (their migration history kept) and restart their sequences.

    Only the tables that hold a row are truncated (one query finds them; a TRUNCATE of an empty table costs as
    much as of a full one), and the sequences those tables own that were used are restarted: the same end
    state as truncating them all with RESTART IDENTITY.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schemaname, tablename FROM pg_tables"
            " WHERE schemaname = ANY(%s) AND tablename <> 'django_migrations'"
            " ORDER BY schemaname, tablename",
            [list(TEST_TENANTS)],
        )
        tables = [f'"{schema_name}"."{name}"' for schema_name, name in cursor.fetchall()]
        holding_rows = _non_empty(cursor, tables)
        if holding_rows:
            cursor.execute(f"TRUNCATE {', '.join(holding_rows)} RESTART IDENTITY CASCADE")
        cursor.execute(
            "SELECT setval(s.oid, seq.seqstart, false) FROM pg_class s"
            " JOIN pg_namespace n ON n.oid = s.relnamespace"
            " JOIN pg_sequence seq ON seq.seqrelid = s.oid"
            " JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid"
            "  AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')"
            " JOIN pg_class t ON t.oid = d.refobjid"
            " WHERE s.relkind = 'S' AND n.nspname = ANY(%s) AND t.relname <> 'django_migrations'"
            "  AND CASE WHEN s.relkind = 'S' THEN pg_sequence_last_value(s.oid) END IS NOT NULL",
            [list(TEST_TENANTS)],
        )


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
