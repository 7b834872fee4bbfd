"""Two-way Consul sync, against the in-process double of Consul's agent API (no Consul binary here)."""

import pytest
from django.core.management import CommandError, call_command

from services import services
from services.consul import ConsulClient, consul_sync
from services.models import RegistryEvent, ServiceInstance
from tests.services.conftest import register
from tests.services.consul_double import ConsulDouble


@pytest.fixture
def consul():
    double = ConsulDouble()
    yield double
    double.close()


def test_push_registers_our_instances_with_their_checks_and_passes_ttls(db, consul, probe_target):
    register("stats-1", tags=["api"], weight=3, metadata={"version": "2"},
             checks=[{"kind": "ttl", "ttl": "15s", "deregister_critical_after": "10m"},
                     {"kind": "http", "name": "http", "url": probe_target.url, "interval": "10s", "timeout": "2s"}])
    services.service_heartbeat(service_id="stats-1")
    register("stats-2")  # TTL never passed here: stays critical there too

    with ConsulClient(consul.url) as client:
        report = consul_sync(client=client, pull=False)

    assert sorted(report.pushed) == ["stats-1", "stats-2"]
    pushed = consul.services["stats-1"]
    assert (pushed["Name"], pushed["Address"], pushed["Port"]) == ("stats-api", "10.0.0.1", 8080)
    assert pushed["Tags"] == ["api"]
    assert pushed["Weights"] == {"Passing": 3, "Warning": 1}
    assert pushed["Meta"] == {"version": "2", "courtside_source": "courtside"}
    definitions = {c["CheckID"]: c["Definition"] for c in consul.checks.values()}
    assert definitions["stats-1:ttl"]["TTL"] == "15s"
    assert definitions["stats-1:ttl"]["DeregisterCriticalServiceAfter"] == "600s"
    assert definitions["stats-1:http"]["HTTP"] == probe_target.url
    assert (definitions["stats-1:http"]["Interval"], definitions["stats-1:http"]["Timeout"]) == ("10s", "2s")
    assert consul.checks["stats-1:ttl"]["Status"] == "passing"
    assert consul.checks["stats-2:ttl"]["Status"] == "critical"
    assert ("PUT", "/v1/agent/check/pass/stats-1%3Attl") in consul.calls or \
        ("PUT", "/v1/agent/check/pass/stats-1:ttl") in consul.calls


def test_pull_copies_consuls_catalog_tagged_by_source_and_never_copies_ours_back(db, consul):
    consul.register({"ID": "billing-1", "Name": "billing", "Tags": ["api"], "Address": "10.1.0.1", "Port": 9000,
                     "Weights": {"Passing": 5, "Warning": 1},
                     "Checks": [{"CheckID": "billing-1:ttl", "TTL": "10s"}]})
    consul.register({"ID": "billing-2", "Name": "billing", "Tags": ["api"], "Port": 9001,
                     "Checks": [{"CheckID": "billing-2:ttl", "TTL": "10s"}]})
    consul.checks["billing-1:ttl"]["Status"] = "passing"
    register("stats-1", checks=[])

    with ConsulClient(consul.url) as client:
        report = consul_sync(client=client)

    assert sorted(report.pulled) == ["billing-1", "billing-2"]
    pulled = {i.service_id: i for i in ServiceInstance.objects.filter(source="consul")}
    assert (pulled["billing-1"].status, pulled["billing-1"].weight, pulled["billing-1"].address) == \
        ("passing", 5, "10.1.0.1:9000")
    assert pulled["billing-2"].status == "critical"
    assert pulled["billing-2"].host == "10.9.0.1"  # no service address: the node's, as Consul clients do
    assert ServiceInstance.objects.get(service_id="stats-1").source == "courtside"
    assert services.next_instance("billing").service_id == "billing-1"
    assert RegistryEvent.objects.filter(kind="consul_sync").count() == 1

    # A second sync is idempotent; ours was pushed, not pulled back as a Consul instance.
    with ConsulClient(consul.url) as client:
        consul_sync(client=client)
    assert ServiceInstance.objects.count() == 3


def test_removals_travel_both_ways(db, consul):
    consul.register({"ID": "billing-1", "Name": "billing", "Port": 9000})
    register("stats-1", checks=[])
    with ConsulClient(consul.url) as client:
        consul_sync(client=client)
    assert "stats-1" in consul.services and ServiceInstance.objects.filter(service_id="billing-1").exists()

    del consul.services["billing-1"]
    services.service_deregister(service_id="stats-1")
    with ConsulClient(consul.url) as client:
        report = consul_sync(client=client)

    assert report.removed_from_consul == ["stats-1"] and "stats-1" not in consul.services
    assert report.removed_here == ["billing-1"] and not ServiceInstance.objects.exists()


def test_the_command_syncs_and_reports_an_unreachable_agent(db, consul, closed_port):
    register("stats-1", checks=[])
    call_command("consul_sync", "--url", consul.url)
    assert "stats-1" in consul.services
    with pytest.raises(CommandError, match="unreachable"):
        call_command("consul_sync", "--url", f"http://127.0.0.1:{closed_port}")


def test_consul_entries_we_cannot_hold_are_skipped_not_fatal(db, consul):
    consul.register({"ID": "Billing Main", "Name": "Billing", "Port": 9000})  # Consul allows these names
    consul.register({"ID": "billing-2", "Name": "billing", "Port": 70000 - 4465})

    with ConsulClient(consul.url) as client:
        report = consul_sync(client=client)

    assert report.skipped == ["Billing Main"] and report.pulled == ["billing-2"]
    assert list(ServiceInstance.objects.values_list("service_id", flat=True)) == ["billing-2"]
