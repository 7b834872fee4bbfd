"""Registration, heartbeats and discovery over the operator API, authenticated by per-service tokens."""

import json
import threading

import pytest

from registry.models import HealthCheck, RegistryEvent, ServiceInstance, ServiceToken
from tests.conftest import PUBLIC_HOST, TenantClient
from tests.registry.conftest import register


def post_json(client, path, body):
    return client.post(path, data=json.dumps(body), content_type="application/json")


def assert_error(response, status, code=None):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "detail", "request_id"}
    if code:
        assert body["error"]["code"] == code
    return body["error"]


REGISTRATION = {"service_id": "stats-1", "name": "stats-api", "host": "10.0.0.5", "port": 8080,
                "tags": ["api", "production"], "metadata": {"version": "1.4"}, "weight": 2}


def test_a_service_registers_starts_critical_and_turns_passing_on_its_first_heartbeat(service_client):
    client = service_client("stats-api")

    created = post_json(client, "/api/v1/services/register", REGISTRATION)
    assert created.status_code == 201
    assert created.json()["status"] == "critical"  # as in Consul: critical until the first pass
    assert [c["kind"] for c in created.json()["checks"]] == ["ttl"]

    beat = client.put("/api/v1/services/heartbeat/stats-1")
    assert beat.status_code == 200 and beat.json()["status"] == "passing"
    listed = client.get("/api/v1/services/stats-api/instances").json()["results"]
    assert [(i["service_id"], i["address"], i["status"]) for i in listed] == [("stats-1", "10.0.0.5:8080", "passing")]


def test_re_registering_the_same_id_updates_it_and_keeps_its_health(service_client):
    client = service_client("stats-api")
    post_json(client, "/api/v1/services/register", REGISTRATION)
    client.put("/api/v1/services/heartbeat/stats-1")

    again = post_json(client, "/api/v1/services/register", {**REGISTRATION, "port": 9090, "tags": ["api"]})

    assert again.status_code == 200
    assert ServiceInstance.objects.count() == 1
    instance = ServiceInstance.objects.get()
    assert (instance.port, instance.tags, instance.status) == (9090, ["api"], "passing")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"port": 70000}, "port"),
        ({"port": 0}, "port"),
        ({"name": ""}, "name"),
        ({"checks": [{"type": "grpc"}]}, "checks"),
        ({"checks": [{"type": "http", "url": "http://10.0.0.5/health", "interval": "100ms"}]}, "checks"),
        ({"checks": [{"type": "tcp", "interval": 0.2}]}, "checks"),
    ],
    ids=["port-too-high", "port-zero", "empty-name", "unknown-check-type", "interval-below-floor",
         "tcp-interval-below-floor"],
)
def test_bad_registrations_get_a_400_naming_the_field_and_write_nothing(operator_client, change, field):
    events = RegistryEvent.objects.count()

    response = post_json(operator_client, "/api/v1/services/register", {**REGISTRATION, **change})

    error = assert_error(response, 400, "invalid")
    assert field in error["detail"]
    assert ServiceInstance.objects.count() == 0 and HealthCheck.objects.count() == 0
    assert RegistryEvent.objects.count() == events


def test_a_duplicate_id_with_another_services_token_is_refused_and_the_original_kept(service_client):
    post_json(service_client("stats-api"), "/api/v1/services/register", REGISTRATION)
    intruder = service_client("billing")

    response = post_json(intruder, "/api/v1/services/register",
                         {**REGISTRATION, "name": "billing", "host": "6.6.6.6"})

    assert_error(response, 400, "service_id_taken")
    instance = ServiceInstance.objects.get()
    assert (instance.name, instance.host) == ("stats-api", "10.0.0.5")
    assert_error(intruder.put("/api/v1/services/heartbeat/stats-1"), 400, "service_id_taken")
    assert_error(intruder.delete("/api/v1/services/deregister/stats-1"), 400, "service_id_taken")
    assert ServiceInstance.objects.filter(service_id="stats-1").exists()


def test_a_token_cannot_register_instances_of_another_service_name(service_client):
    response = post_json(service_client("billing"), "/api/v1/services/register", REGISTRATION)
    assert_error(response, 400, "wrong_service")
    assert not ServiceInstance.objects.exists()


def test_unknown_tokens_and_anonymous_callers_are_refused(public_tenant):
    bad = TenantClient(PUBLIC_HOST, HTTP_AUTHORIZATION="Bearer cs_svc_not-a-real-token")
    assert_error(post_json(bad, "/api/v1/services/register", REGISTRATION), 401)
    assert_error(TenantClient(PUBLIC_HOST).get("/api/v1/services/stats-api/instances"), 401, "not_authenticated")
    assert not ServiceInstance.objects.exists()


def test_tokens_are_stored_hashed_and_shown_once(operator_client):
    response = post_json(operator_client, "/api/v1/services/tokens", {"service_name": "stats-api"})
    assert response.status_code == 201
    token = response.json()["token"]
    row = ServiceToken.objects.get()
    assert token not in (row.token_hash, row.token_prefix) and token.startswith(row.token_prefix)
    assert_error(post_json(operator_client, "/api/v1/services/tokens", {"service_name": "stats-api"}), 400)


def test_deregistration_with_the_services_own_token(service_client):
    client = service_client("stats-api")
    post_json(client, "/api/v1/services/register", REGISTRATION)

    assert client.delete("/api/v1/services/deregister/stats-1").status_code == 204
    assert not ServiceInstance.objects.exists()
    assert RegistryEvent.objects.filter(kind="deregistered", service_id="stats-1").exists()
    assert_error(client.put("/api/v1/services/heartbeat/stats-1"), 404, "not_found")


def test_instances_filter_by_every_tag_and_by_status(operator_client):
    for service_id, tags in [("a", ["api", "production"]), ("b", ["api"]), ("c", ["api", "production", "eu"])]:
        register(service_id, tags=tags, checks=[])  # no checks: passing
    register("d", tags=["api", "production"])  # default TTL check: critical until a heartbeat

    url = "/api/v1/services/stats-api/instances?tag=api&tag=production"
    assert [i["service_id"] for i in operator_client.get(url).json()["results"]] == ["a", "c", "d"]
    assert [i["service_id"] for i in operator_client.get(url + "&status=passing").json()["results"]] == ["a", "c"]
    assert [i["service_id"] for i in operator_client.get(url + "&status=critical").json()["results"]] == ["d"]
    assert_error(operator_client.get(url + "&status=sleepy"), 400, "invalid")


def test_next_answers_503_when_no_instance_is_healthy(operator_client):
    register("only")  # critical: never heartbeated
    assert_error(operator_client.get("/api/v1/services/stats-api/next"), 503, "no_healthy_instance")


def test_maintenance_takes_an_instance_out_of_round_robin(operator_client):
    register("a", checks=[])
    register("b", checks=[])
    assert operator_client.put("/api/v1/services/maintenance/b", data=json.dumps({"enable": True}),
                               content_type="application/json").status_code == 200
    picks = {operator_client.get("/api/v1/services/stats-api/next").json()["service_id"] for _ in range(4)}
    assert picks == {"a"}
    assert ServiceInstance.objects.get(service_id="b").status == "maintenance"


@pytest.mark.django_db(transaction=True)
def test_a_blocking_query_returns_when_the_service_changes(public_tenant):
    from tests.conftest import make_user

    client = TenantClient(PUBLIC_HOST)
    client.login_user(make_user("public", username="op", superuser=True), "public")
    register("a", checks=[])
    first = client.get("/api/v1/services/stats-api/instances")
    index = int(first["X-Registry-Index"])

    def register_b():
        from django.db import connections

        try:
            register("b", checks=[])
        finally:
            connections.close_all()  # this thread's own connection: left open, it kept the test database from dropping

    timer = threading.Timer(0.3, register_b)
    timer.start()
    try:
        changed = client.get(f"/api/v1/services/stats-api/instances?index={index}&wait=20s")
    finally:
        timer.join()

    assert int(changed["X-Registry-Index"]) > index
    assert [i["service_id"] for i in changed.json()["results"]] == ["a", "b"]
    unchanged = client.get(f"/api/v1/services/stats-api/instances?index={changed['X-Registry-Index']}&wait=0.2s")
    assert unchanged["X-Registry-Index"] == changed["X-Registry-Index"]


def test_the_registry_is_not_reachable_from_tenant_hosts(lakers_client, warriors_client, service_client):
    client = service_client("stats-api")
    post_json(client, "/api/v1/services/register", REGISTRATION)
    tenant_with_token = TenantClient("lakers.localhost", HTTP_AUTHORIZATION=client.defaults["HTTP_AUTHORIZATION"])

    for tenant_client in (lakers_client, warriors_client, tenant_with_token):
        assert tenant_client.get("/api/v1/services/stats-api/instances").status_code == 404
        assert post_json(tenant_client, "/api/v1/services/register", REGISTRATION).status_code == 404
    for tenant_admin in (lakers_client, warriors_client):  # tenant superusers: the tenant admin has no registry
        assert tenant_admin.get("/admin/services/serviceinstance/").status_code == 404
        assert b"serviceinstance" not in tenant_admin.get("/admin/").content
    assert ServiceInstance.objects.get().host == "10.0.0.5"


def test_a_tenant_superusers_session_means_nothing_on_the_operator_host(tenant_lakers):
    from tests.conftest import make_user

    register("a", checks=[])
    client = TenantClient(PUBLIC_HOST)
    client.login_user(make_user("lakers", username="lakers_boss", superuser=True), "lakers")
    assert_error(client.get("/api/v1/services/stats-api/instances"), 401, "not_authenticated")
    assert client.get("/admin/services/serviceinstance/").status_code == 302  # to the operator's login




def test_the_operator_openapi_schema_describes_the_registry(operator_client):
    schema = operator_client.get("/api/schema/").content
    assert b"/api/v1/services/register" in schema and b"/api/v1/services/{name}/next" in schema
