"""Behind PgBouncer's transaction pooling: the search_path trap of django-tenants, and LISTEN.

A pool of one server connection, two Django connections taking turns: with
django-tenants' own backend each statement may run with the other tenant's
search_path (its SET went out as a transaction of its own); with
ops.pooled_backend the SET travels with every statement. LISTEN through the
pooler hears nothing; on the direct connection (DATABASE_DIRECT_URL) it hears
every notification, which is what the configuration listener uses.
"""

from __future__ import annotations

import shutil
import time

import psycopg
import pytest
from django.db import connection

from tests.pgbouncer import PgBouncer

pytestmark = pytest.mark.skipif(shutil.which("pgbouncer") is None and not __import__("os").path.exists(
    "/usr/sbin/pgbouncer"), reason="Debian's pgbouncer is not installed (make pgbouncer)")


@pytest.fixture(scope="module")
def bouncer(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        params = connection.get_connection_params()
    if not params.get("host") or str(params["host"]).startswith("/"):
        pytest.skip("PgBouncer is put in front of a TCP server (the embedded one listens on a socket)")
    server = PgBouncer(host=params["host"], port=int(params.get("port") or 5432), user=params.get("user") or "postgres",
                       pool_size=1).start()
    yield server
    server.stop()


def _wrapper(engine_module: str, bouncer, alias: str):
    import importlib

    settings_dict = {**connection.settings_dict, "HOST": "127.0.0.1", "PORT": bouncer.port, "CONN_MAX_AGE": 0,
                     "DISABLE_SERVER_SIDE_CURSORS": True}
    module = importlib.import_module(f"{engine_module}.base")
    return module.DatabaseWrapper(settings_dict, alias=alias)


def _interleaved_schemas(engine_module: str, bouncer) -> list[tuple[str, str]]:
    from tenants.models import Tenant

    lakers, warriors = Tenant.objects.get(schema_name="lakers"), Tenant.objects.get(schema_name="warriors")
    one, other = _wrapper(engine_module, bouncer, "one"), _wrapper(engine_module, bouncer, "other")
    one.set_tenant(lakers)
    other.set_tenant(warriors)
    seen = []
    try:
        for _ in range(5):
            # As two requests in two threads do: each opens its cursor (django-tenants sends its SET then),
            # then each runs its statements.
            first, second = one.cursor(), other.cursor()
            for cursor, expected in ((first, "lakers"), (second, "warriors"), (first, "lakers")):
                cursor.execute("SELECT current_schema()")
                seen.append((expected, cursor.fetchone()[0]))
            first.close()
            second.close()
    finally:
        one.close()
        other.close()
    return seen


@pytest.mark.django_db
def test_the_stock_backend_runs_queries_in_another_tenants_schema(bouncer, two_tenants):
    seen = _interleaved_schemas("django_tenants.postgresql_backend", bouncer)
    assert any(expected != actual for expected, actual in seen), seen  # the trap (#545, #1112), reproduced


@pytest.mark.django_db
def test_the_pooled_backend_keeps_each_statement_in_its_schema(bouncer, two_tenants):
    seen = _interleaved_schemas("ops.pooled_backend", bouncer)
    assert all(expected == actual for expected, actual in seen), seen


@pytest.mark.django_db
def test_the_pooled_backend_reads_tenant_rows_in_a_transaction_and_in_autocommit(bouncer, two_tenants):
    from django.db import transaction  # noqa: F401 - the wrappers' own atomic blocks below

    from tenants.models import Tenant

    wrapper = _wrapper("ops.pooled_backend", bouncer, "rows")
    wrapper.set_tenant(Tenant.objects.get(schema_name="warriors"))
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM league_team")  # tenant table, found by search_path
            assert cursor.fetchone()[0] >= 0
            cursor.executemany("SELECT %s", [(1,), (2,)])
        wrapper.set_autocommit(False)
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT current_schema()")
            assert cursor.fetchone()[0] == "warriors"
        wrapper.rollback()
    finally:
        wrapper.close()


def _notifications(conninfo: dict, sender: dict) -> int:
    listener = psycopg.connect(autocommit=True, **conninfo)
    try:
        listener.execute("LISTEN courtside_pgbouncer_test")
        with psycopg.connect(autocommit=True, **sender) as notify:
            for n in range(20):
                notify.execute(f"NOTIFY courtside_pgbouncer_test, '{n}'")
        time.sleep(0.3)
        return sum(1 for _ in listener.notifies(timeout=1.0, stop_after=20))
    finally:
        listener.close()


@pytest.mark.django_db
def test_listen_hears_nothing_through_the_pooler_and_everything_directly(bouncer):
    params = {k: v for k, v in connection.get_connection_params().items() if k in ("dbname", "user", "host", "port")}
    pooled = {**params, "host": "127.0.0.1", "port": bouncer.port}
    assert _notifications(pooled, params) == 0
    assert _notifications(params, params) == 20


def test_the_configuration_listener_listens_past_the_pooler(settings):
    from configuration.listener import Listener

    settings.DATABASE_DIRECT = {"HOST": "db-direct.internal", "PORT": 5433, "USER": "app", "PASSWORD": "x"}
    listener = Listener(owner=None, settings_dict={"NAME": "test_db", "HOST": "pgbouncer.internal", "PORT": 6432})
    assert listener.conninfo == {"dbname": "test_db", "host": "db-direct.internal", "port": 5433, "user": "app",
                                 "password": "x"}


def _lock_held_elsewhere(params: dict, key: int) -> bool:
    """Seen from a direct session: can it take the one-key lock? (It lets go at once.)"""
    with psycopg.connect(autocommit=True, **params) as other:
        taken = other.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
        if taken:
            other.execute("SELECT pg_advisory_unlock(%s)", [key])
        return not taken


@pytest.mark.django_db(transaction=True)
def test_a_session_advisory_lock_excludes_a_second_client_behind_the_pooler(bouncer, settings):
    """Two clients of PgBouncer (a pool of one server connection, as transaction pooling hands it to either):
    one holds the pool-refill lock, the other must be kept out, and the lock must be gone once the
    holder's block ends. Through the pooler itself both share the one server session and both "hold" it."""
    from core import locks

    params = {k: v for k, v in connection.get_connection_params().items() if k in ("dbname", "user", "host", "port")}
    settings.DATABASE_POOL_MODE = "transaction"
    settings.DATABASE_DIRECT = {"HOST": params["host"], "PORT": params.get("port") or 5432,
                                "USER": params.get("user") or "postgres"}
    one = _wrapper("ops.pooled_backend", bouncer, "one")
    two = _wrapper("ops.pooled_backend", bouncer, "two")
    key = locks.lock_key("pool-refill")
    try:
        with locks.advisory_lock("pool-refill", wait=False, using=one) as first:
            assert first
            with locks.advisory_lock("pool-refill", wait=False, using=two) as second:
                assert not second  # kept out while the first client holds it
            assert _lock_held_elsewhere(params, key)
        assert not _lock_held_elsewhere(params, key)  # released with the holder's block
        with locks.advisory_lock("pool-refill", wait=False, using=two) as later:
            assert later
    finally:
        one.close()
        two.close()


def test_session_locks_behind_transaction_pooling_without_a_direct_url_are_refused(settings):
    from django.core.exceptions import ImproperlyConfigured

    from core import locks

    settings.DATABASE_POOL_MODE, settings.DATABASE_DIRECT = "transaction", {}
    with pytest.raises(ImproperlyConfigured, match="DATABASE_DIRECT_URL"):
        with locks.advisory_lock("pool-refill", wait=False):
            pass
