"""One production server (gunicorn + production settings) per module of these tests, on the test database."""

from __future__ import annotations

import pytest

from tests.conftest import database_url
from tests.deploy import stack


@pytest.fixture(scope="module")
def production_env(tmp_path_factory, django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        url = database_url()
    # The cluster heartbeats every half second; /readyz wants a beat within 4 s.
    static_root = stack.collected_static_root(url, tmp_path_factory.getbasetemp())  # once per session
    return stack.production_env(url, static_root, HEALTH_CLUSTER_MAX_AGE="4",
                                COURTSIDE_SERVICES_SELF_HEARTBEAT_EVERY="0.5", METRICS_TOKEN=stack.METRICS_TOKEN)


@pytest.fixture(scope="module")
def production_server(production_env):
    server, url = stack.start_server(production_env)
    server.url = url
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _committed_test_tenants(request, django_db_blocker):
    """The server reads committed rows only: a test that opens no transaction of its own still finds the sites
    (an earlier transactional test's flush removed their rows; tests.conftest puts them back for db tests only)."""
    if request.node.get_closest_marker("django_db") is None:
        from tests.conftest import ensure_test_tenants

        with django_db_blocker.unblock():
            ensure_test_tenants()
