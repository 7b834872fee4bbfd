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
    env = stack.production_env(url, tmp_path_factory.mktemp("static"), HEALTH_CLUSTER_MAX_AGE="4",
                               COURTSIDE_SERVICES_SELF_HEARTBEAT_EVERY="0.5",
                               METRICS_TOKEN=stack.METRICS_TOKEN)
    stack.collectstatic(env)
    return env


@pytest.fixture(scope="module")
def production_server(production_env):
    server, url = stack.start_server(production_env)
    server.url = url
    yield server
    server.stop()
