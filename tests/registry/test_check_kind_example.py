"""A new check kind is two files: its module (tests/registry/example_kind.py) and the setting that loads it.

Nothing else in the registry names the kind, yet the API takes its spec, the sweep probes it, the admin
shows its target and Consul gets a definition for it.
"""

import sys

import pytest

from registry import conf, kinds, sweeps
from registry.consul import service_definition
from registry.models import HealthCheck, ServiceInstance
from tests.registry.test_api import post_json

REGISTRATION = {"service_id": "stats-1", "name": "stats-api", "host": "10.0.0.1", "port": 8080}


@pytest.fixture
def file_kind(settings):
    settings.SERVICES = {"CHECK_KINDS": ["tests.registry.example_kind"]}
    kinds.load(conf.check_kind_modules())  # what the app's ready() does with the setting
    if kinds.get("file") is None:  # imported by an earlier test, which unregistered it
        kinds.register(sys.modules["tests.registry.example_kind"].FileKind)
    yield kinds.get("file")
    kinds.unregister("file")


def test_a_kind_from_one_module_is_registered_probed_shown_and_synced(file_kind, service_client, operator_client,
                                                                       tmp_path):
    ready = tmp_path / "ready"
    response = post_json(service_client("stats-api"), "/api/v1/services/register", {
        **REGISTRATION, "checks": [{"type": "file", "name": "ready", "path": str(ready), "interval": "1s"}]})
    assert response.status_code == 201, response.content
    check = HealthCheck.objects.get(instance__service_id="stats-1")
    assert (check.kind, check.params) == ("file", {"path": str(ready)})

    sweeps.health_sweep()
    check.refresh_from_db()
    assert (check.status, check.output) == ("critical", f"{ready} is missing")

    ready.write_text("ok")
    HealthCheck.objects.filter(pk=check.pk).update(next_check_at=check.last_checked_at)
    sweeps.health_sweep()
    check.refresh_from_db()
    assert check.status == "passing"
    assert ServiceInstance.objects.get(service_id="stats-1").status == "passing"

    page = operator_client.get(f"/admin/services/serviceinstance/{check.instance_id}/change/").content.decode()
    assert f"file {ready}" in page
    definition = service_definition(ServiceInstance.objects.get(service_id="stats-1"))["Checks"][0]
    assert definition["TTL"] == "180s" and definition["CheckID"] == "stats-1:ready"


def test_its_own_validation_and_the_list_of_kinds_in_errors(file_kind, service_client):
    client = service_client("stats-api")
    response = post_json(client, "/api/v1/services/register", {**REGISTRATION, "checks": [{"type": "file",
                                                                                       "path": "relative"}]})
    assert response.status_code == 400
    assert "A file check needs an absolute path." in response.content.decode()
    response = post_json(client, "/api/v1/services/register", {**REGISTRATION, "checks": [{"type": "nope"}]})
    assert "use ttl, http, tcp" in response.content.decode() and "or file" in response.content.decode()
