"""PostgreSQL (connect + SELECT 1) and Redis (PING) check kinds, against the machine's real servers.

Their DSN is a secret: sealed in the database, never in the API's answers, the admin, events or logs.
"""

import json
import logging
import os
import socket
import uuid
from urllib.parse import quote

import psycopg
import pytest
import redis

from registry import sweeps
from registry.models import HealthCheck, RegistryEvent, ServiceInstance
from tests.conftest import connection_params
from tests.registry.test_api import post_json

REDIS_URL = os.environ.get("REGISTRY_TEST_REDIS_URL", "redis://127.0.0.1:6379/4")
REGISTRATION = {"service_id": "db-1", "name": "stats-api", "host": "10.0.0.1", "port": 8080}
PASSWORD = "s3cret-Pw-" + uuid.uuid4().hex[:8]


def redis_or_skip():
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        pytest.skip(f"no Redis answers at {REDIS_URL} ({error}); set REGISTRY_TEST_REDIS_URL")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def monitor_dsn(db):
    """A DSN with a password, for a role made (and committed) for this test, on the test database."""
    role = f"monitor_{uuid.uuid4().hex[:8]}"
    params = connection_params()
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
    host = params.get("host", "")
    where = f"host={quote(host)}" if host.startswith("/") else ""
    netloc = "" if where else f"{host}:{params.get('port', 5432)}"
    dsn = f"postgresql://{role}:{PASSWORD}@{netloc}/{params['dbname']}" + (f"?{where}" if where else "")
    yield dsn
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f"DROP ROLE {role}")


def sweep_once():
    HealthCheck.objects.update(next_check_at="2000-01-01T00:00:00Z")
    sweeps.health_sweep()


def test_a_postgres_check_passes_on_select_1_and_fails_on_a_dead_server(service_client, monitor_dsn, caplog):
    client = service_client("stats-api")
    dead = f"postgresql://monitor:{PASSWORD}@127.0.0.1:{closed_port()}/nothing"
    response = post_json(client, "/api/v1/services/register", {**REGISTRATION, "checks": [
        {"type": "postgres", "name": "db", "dsn": monitor_dsn, "interval": "5s", "timeout": "3s"},
        {"type": "postgres", "name": "dead", "dsn": dead, "timeout": "2s"},
    ]})
    assert response.status_code == 201, response.content
    with caplog.at_level(logging.DEBUG):
        sweep_once()
    checks = {check.name: check for check in HealthCheck.objects.filter(instance__service_id="db-1")}
    assert checks["db"].status == "passing", checks["db"].output
    assert "SELECT 1 ok" in checks["db"].output
    assert checks["dead"].status == "critical"
    assert "PostgreSQL 127.0.0.1:" in checks["dead"].output
    assert ServiceInstance.objects.get(service_id="db-1").status == "critical"

    # The DSN's password is nowhere to be read: not in the row (sealed), the API, events or logs.
    assert PASSWORD not in json.dumps(checks["db"].secret) and "$fernet" in checks["db"].secret
    assert PASSWORD not in checks["db"].output + checks["dead"].output
    listed = client.get("/api/v1/services/stats-api/instances").content.decode()
    assert "db-1" in listed and PASSWORD not in listed and "dsn" not in listed
    assert PASSWORD not in caplog.text
    assert not any(PASSWORD in json.dumps(e.detail) + e.message for e in RegistryEvent.objects.all())


def test_a_redis_check_passes_on_pong_and_its_password_is_masked(service_client, operator_client):
    redis_or_skip()
    client = service_client("stats-api")
    wrong = REDIS_URL.replace("redis://", f"redis://courtside:{PASSWORD}@", 1)  # no such user: refused
    response = post_json(client, "/api/v1/services/register", {**REGISTRATION, "checks": [
        {"type": "redis", "name": "cache", "dsn": REDIS_URL, "timeout": "2s"},
        {"type": "redis", "name": "locked", "dsn": wrong, "timeout": "2s"},
        {"type": "redis", "name": "down", "dsn": f"redis://127.0.0.1:{closed_port()}/0", "timeout": "1s"},
    ]})
    assert response.status_code == 201, response.content
    sweep_once()
    checks = {check.name: check for check in HealthCheck.objects.filter(instance__service_id="db-1")}
    assert (checks["cache"].status, checks["cache"].output.endswith("PONG")) == ("passing", True)
    assert checks["locked"].status == "critical" and PASSWORD not in checks["locked"].output
    assert checks["down"].status == "critical" and "Connection" in checks["down"].output

    page = operator_client.get(f"/admin/services/serviceinstance/{checks['cache'].instance_id}/change/")
    html = page.content.decode()
    assert "redis 127.0.0.1:6379/4" in html and PASSWORD not in html


def test_bad_dsns_are_400s_that_do_not_echo_them(service_client):
    client = service_client("stats-api")
    for check, message in (
        ({"type": "postgres"}, "A PostgreSQL check needs a DSN."),
        ({"type": "postgres", "dsn": f"host=x password={PASSWORD} nonsense"}, "Not a PostgreSQL connection string"),
        ({"type": "redis", "dsn": f"http://u:{PASSWORD}@x"}, "Not a Redis URL"),
        ({"type": "redis", "dsn": 5}, "A string is expected."),
    ):
        response = post_json(client, "/api/v1/services/register", {**REGISTRATION, "checks": [check]})
        assert response.status_code == 400, check
        assert message in response.content.decode() and PASSWORD not in response.content.decode()
    assert not ServiceInstance.objects.filter(service_id="db-1").exists()


def test_the_command_registers_any_kind_from_a_json_spec_and_never_prints_the_dsn(db, capsys):
    """`service_register --check '<spec JSON>'` (repeatable) takes any registered kind, as the API does:
    PostgreSQL, Redis, or a project's own (registry/README.md, "Check kinds")."""
    from django.core.management import call_command
    from django.core.management.base import CommandError

    dsn = f"redis://:{PASSWORD}@127.0.0.1:{closed_port()}/0"
    call_command("service_register", "stats-api", "--id", "db-1", "--host", "10.0.0.1", "--port", "8080",
                 "--check", json.dumps({"type": "redis", "name": "cache", "dsn": dsn, "interval": "10s"}),
                 "--check", '{"type": "ttl", "ttl": "30s"}')
    out = capsys.readouterr().out
    assert "Registered stats-api/db-1" in out and PASSWORD not in out
    kinds_ = sorted(HealthCheck.objects.filter(instance__service_id="db-1").values_list("kind", flat=True))
    assert kinds_ == ["redis", "ttl"]
    stored = HealthCheck.objects.get(instance__service_id="db-1", kind="redis")
    assert PASSWORD not in json.dumps(stored.secret)  # sealed at rest
    with pytest.raises(CommandError, match="--check") as refused:
        call_command("service_register", "stats-api", "--id", "db-2", "--host", "10.0.0.1", "--port", "8080",
                     "--check", "{not json")
    with pytest.raises(CommandError) as refused:
        call_command("service_register", "stats-api", "--id", "db-2", "--host", "10.0.0.1", "--port", "8080",
                     "--check", json.dumps({"type": "postgres", "dsn": f"mysql://u:{PASSWORD}@h/db"}))
    assert PASSWORD not in str(refused.value)
