"""/healthz and /readyz: on every host, JSON, one word per check, 503 when a dependency is not ready."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.apps import apps
from django.test import Client
from django.utils import timezone

HOSTS = ["localhost", "lakers.localhost", "nobody.localhost", "10.1.2.3"]  # the last is not in ALLOWED_HOSTS


def _cluster_beat(seconds_ago: float):
    instance = apps.get_model("services", "ServiceInstance")
    return instance.objects.create(service_id="cluster-test-1", name="courtside-cluster", host="worker1",
                                   last_heartbeat=timezone.now() - dt.timedelta(seconds=seconds_ago))


@pytest.mark.parametrize("host", HOSTS)
def test_healthz_answers_on_every_host(db, host):
    response = Client(HTTP_HOST=host).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("host", HOSTS)
def test_readyz_is_ready_with_a_fresh_cluster_heartbeat(db, host, tenant_lakers):
    _cluster_beat(seconds_ago=1)
    response = Client(HTTP_HOST=host).get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) >= {"database", "migrations", "cluster"}
    assert set(body["checks"].values()) == {"ok"}


def test_readyz_is_503_when_the_cluster_stopped_heartbeating(db, settings):
    settings.HEALTH_CLUSTER_MAX_AGE = 30
    _cluster_beat(seconds_ago=31)
    response = Client(HTTP_HOST="localhost").get("/readyz/")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.json()["checks"]["cluster"] == "unavailable"
    assert response.json()["checks"]["database"] == "ok"


def test_readyz_reveals_no_versions_hosts_or_errors(db, settings):
    settings.REDIS_URL = "redis://:hunter2-secret@127.0.0.1:1/0"  # nothing listens there
    response = Client(HTTP_HOST="localhost").get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"] == "unavailable"
    text = response.content.decode()
    assert not re.search(r"\d+\.\d+|127\.0\.0\.1|hunter2|postgres|redis://", text), text
    assert set(body) == {"status", "checks"} and set(body["checks"].values()) <= {"ok", "unavailable"}


def test_readyz_does_no_per_tenant_work(db, tenant_lakers, tenant_warriors):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _cluster_beat(seconds_ago=1)
    Client(HTTP_HOST="localhost").get("/readyz")  # the migration answer is cached from here on
    with CaptureQueriesContext(connection) as queries:
        assert Client(HTTP_HOST="lakers.localhost").get("/readyz").status_code == 200
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    assert len(queries.captured_queries) <= 5, sql  # SELECT 1, the search_path, the cluster's last heartbeat
    assert "lakers" not in sql and "warriors" not in sql and "tenants_domain" not in sql


def test_other_methods_and_paths_go_to_django(db):
    assert Client(HTTP_HOST="localhost").post("/healthz").status_code in (403, 404, 405)
    assert Client(HTTP_HOST="localhost").get("/healthzz").status_code == 404
