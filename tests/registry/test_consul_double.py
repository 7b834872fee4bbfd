"""The Consul double behaves as Consul's HTTP API documentation says, for what the sync relies on.

No database and no Courtside code here: these pin the double itself, so a test
over it cannot pass on behaviour Consul does not have.
"""

import httpx
import pytest

from tests.registry.consul_double import ConsulDouble, parse_go_duration


@pytest.fixture
def consul():
    double = ConsulDouble()
    yield double
    double.close()


def put(consul, path, body=None, **params):
    return httpx.put(consul.url + path, json=body, params=params or None, timeout=5)


def health(consul, name):
    return httpx.get(f"{consul.url}/v1/health/service/{name}", timeout=5).json()


def test_a_ttl_check_starts_critical_passes_then_expires(consul):
    assert put(consul, "/v1/agent/service/register", {"ID": "a", "Name": "web", "Checks": [
        {"CheckID": "a:ttl", "TTL": "10s"}]}).status_code == 200
    checks = {c["CheckID"]: c for c in health(consul, "web")[0]["Checks"]}
    assert checks["a:ttl"]["Status"] == "critical" and checks["serfHealth"]["ServiceID"] == ""

    assert put(consul, "/v1/agent/check/pass/a:ttl", note="ok").status_code == 200
    assert {c["CheckID"]: c["Status"] for c in health(consul, "web")[0]["Checks"]}["a:ttl"] == "passing"
    consul.advance(11)
    expired = {c["CheckID"]: c for c in health(consul, "web")[0]["Checks"]}["a:ttl"]
    assert (expired["Status"], expired["Output"]) == ("critical", "TTL expired")


def test_a_service_critical_past_its_deregister_after_is_reaped_no_sooner_than_a_minute(consul):
    put(consul, "/v1/agent/service/register", {"ID": "a", "Name": "web", "Checks": [
        {"CheckID": "a:ttl", "TTL": "10s", "DeregisterCriticalServiceAfter": "5s"}]})
    consul.advance(30)
    assert len(health(consul, "web")) == 1  # 5 s is raised to Consul's minimum of one minute
    consul.advance(31)
    assert health(consul, "web") == []


@pytest.mark.parametrize(("body", "message"), [
    ({"Name": "web", "Checks": [{"TTL": "1e+30s"}]}, "Request decode failed"),
    ({"Name": "web", "Checks": [{"TTL": "9999999999h"}]}, "Request decode failed"),
    ({"Name": "web", "Meta": {"app.version": "1"}}, "Invalid Service Meta"),
    ({"Name": "web", "Meta": {"consul-x": "1"}}, "Invalid Service Meta"),
    ({"Name": "web", "Meta": {"k": "v" * 513}}, "Invalid Service Meta"),
    ({"Name": "web", "Address": "0.0.0.0"}, "Invalid service address"),
    ({"ID": "x"}, "Missing service name"),
])
def test_registrations_consul_refuses(consul, body, message):
    response = put(consul, "/v1/agent/service/register", body)
    assert response.status_code == 400 and message in response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert consul.services == {}


def test_maintenance_adds_a_critical_check_and_needs_enable(consul):
    put(consul, "/v1/agent/service/register", {"ID": "a", "Name": "web"})
    assert put(consul, "/v1/agent/service/maintenance/a").status_code == 400
    assert put(consul, "/v1/agent/service/maintenance/ghost", enable="true").status_code == 404
    assert put(consul, "/v1/agent/service/maintenance/a", enable="true", reason="deploy").status_code == 200
    check = {c["CheckID"]: c for c in health(consul, "web")[0]["Checks"]}["_service_maintenance:a"]
    assert (check["Status"], check["Notes"]) == ("critical", "deploy")
    put(consul, "/v1/agent/service/maintenance/a", enable="false")
    assert [c["CheckID"] for c in health(consul, "web")[0]["Checks"]] == ["serfHealth"]


def test_go_durations():
    assert parse_go_duration("1m30s") == 90.0 and parse_go_duration("500ms") == 0.5 and parse_go_duration("0") == 0
    for bad in ("10", "1e3s", "s", "", "10x", 10):
        with pytest.raises(Exception, match="invalid duration"):
            parse_go_duration(bad)
