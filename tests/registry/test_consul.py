"""Two-way Consul sync, against the in-process double of Consul's agent API (no Consul binary here)."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from core.errors import DomainError
from registry import balancing, registration, sweeps
from registry.consul import ConsulClient, consul_sync
from registry.models import RegistryEvent, ServiceInstance
from tests.registry.conftest import register
from tests.registry.consul_double import ConsulDouble


@pytest.fixture
def consul():
    double = ConsulDouble()
    yield double
    double.close()


def test_push_registers_our_instances_with_their_checks_and_passes_ttls(db, consul, probe_target):
    register("stats-1", tags=["api"], weight=3, metadata={"version": "2"},
             checks=[{"kind": "ttl", "ttl": "15s", "deregister_critical_after": "10m"},
                     {"kind": "http", "name": "http", "url": probe_target.url, "interval": "10s", "timeout": "2s"}])
    registration.service_heartbeat(service_id="stats-1")
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
    assert balancing.next_instance("billing").service_id == "billing-1"
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
    registration.service_deregister(service_id="stats-1")
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


# --- issue 13.5: Consul-pulled instances mirror Consul's current health, and expire ------------------------------

def sync(consul, **kwargs):
    with ConsulClient(consul.url) as client:
        return consul_sync(client=client, **kwargs)


def status(service_id: str) -> str:
    return ServiceInstance.objects.get(service_id=service_id).status


def events(service_id: str) -> list[tuple[str, str]]:
    return list(RegistryEvent.objects.filter(service_id=service_id).order_by("at", "id")
                .values_list("kind", "message"))


def billing(consul, service_id="billing-1", *, ttl="10s", **extra):
    consul.register({"ID": service_id, "Name": "billing", "Port": 9000, "Address": "10.1.0.1",
                     "Checks": [{"CheckID": f"{service_id}:ttl", "TTL": ttl, **extra}]})


def test_each_sync_mirrors_consuls_current_health_with_an_event_for_each_change(db, consul):
    billing(consul)
    consul.handle("PUT", "/v1/agent/check/pass/billing-1:ttl", {}, None)
    sync(consul)
    assert status("billing-1") == "passing"
    assert events("billing-1")[0][0] == "registered"

    consul.advance(11)  # the service stopped passing its TTL: Consul turns the check critical
    sync(consul)
    assert status("billing-1") == "critical"
    assert events("billing-1")[-1] == ("status", "passing → critical")
    assert balancing.discover("billing", status="passing") == []

    consul.handle("PUT", "/v1/agent/check/warn/billing-1:ttl", {}, None)
    sync(consul)
    assert status("billing-1") == "warning"
    consul.handle("PUT", "/v1/agent/check/pass/billing-1:ttl", {}, None)
    consul.node_status = "critical"  # the node itself failed (serfHealth)
    sync(consul)
    assert status("billing-1") == "critical"
    consul.node_status = "passing"
    consul.handle("PUT", "/v1/agent/service/maintenance/billing-1", {"enable": ["true"]}, None)
    sync(consul)
    assert (status("billing-1"), ServiceInstance.objects.get().maintenance) == ("maintenance", True)
    assert [message for _, message in events("billing-1")][1:] == [
        "passing → critical", "critical → warning", "warning → critical", "critical → maintenance", "set in Consul"]
    sync(consul)  # nothing changed in Consul: nothing written, no event
    assert len(events("billing-1")) == 6


def test_instances_consul_no_longer_lists_are_removed_with_an_event_each(db, consul):
    billing(consul, "billing-1")
    billing(consul, "billing-2", DeregisterCriticalServiceAfter="1m")
    sync(consul)
    assert ServiceInstance.objects.filter(source="consul").count() == 2

    consul.handle("PUT", "/v1/agent/service/deregister/billing-1", {}, None)
    consul.advance(61 + 10)  # billing-2's TTL lapsed, then it stayed critical past its minute: Consul reaps it
    report = sync(consul)

    assert sorted(report.removed_here) == ["billing-1", "billing-2"]
    assert not ServiceInstance.objects.filter(source="consul").exists()
    for service_id in ("billing-1", "billing-2"):
        kind, message = events(service_id)[-1]
        assert kind == "deregistered" and "no longer listed by Consul" in message


def test_a_registration_consul_refuses_does_not_stop_the_sync(db, consul):
    billing(consul)
    consul.handle("PUT", "/v1/agent/check/pass/billing-1:ttl", {}, None)
    register("stats-1", checks=[], metadata={"app.version": "2", "zone": "eu"})  # Consul's Meta refuses the dot
    register("stats-2", checks=[])
    ServiceInstance.objects.filter(service_id="stats-2").update(host="0.0.0.0")  # a row from before we refused it

    report = sync(consul)

    assert status("billing-1") == "passing"  # the pull ran
    assert consul.services["stats-1"]["Meta"] == {"zone": "eu", "courtside_source": "courtside"}
    assert report.skipped == ["stats-2"] and "stats-2" not in consul.services


def test_one_service_consul_cannot_answer_for_keeps_its_instances_and_the_others_are_mirrored(db, consul):
    billing(consul)
    consul.register({"ID": "search-1", "Name": "search", "Port": 9200, "Address": "10.1.0.2"})
    sync(consul)
    consul.fail("/v1/health/service/billing")
    consul.handle("PUT", "/v1/agent/service/maintenance/search-1", {"enable": ["true"]}, None)

    report = sync(consul)

    assert status("search-1") == "maintenance"
    assert ServiceInstance.objects.filter(service_id="billing-1").exists()  # unknown, not gone
    assert report.removed_here == [] and "billing" in " ".join(report.errors)


def test_mirrored_instances_expire_when_consul_stops_confirming_them(db, consul, settings):
    settings.SERVICES = {"CONSUL_MIRROR_TTL": 180.0, "CONSUL_MIRROR_DEREGISTER_AFTER": 3600.0}
    billing(consul)
    consul.handle("PUT", "/v1/agent/check/pass/billing-1:ttl", {}, None)
    sync(consul)
    confirmed = ServiceInstance.objects.get().last_heartbeat
    assert status("billing-1") == "passing" and confirmed is not None
    consul.close()  # Consul is gone, or the sync stopped running: nothing confirms billing-1 any more

    sweeps.health_sweep(now=confirmed + timedelta(seconds=179), probe=False)
    assert status("billing-1") == "passing"
    sweeps.health_sweep(now=confirmed + timedelta(seconds=181), probe=False)
    assert status("billing-1") == "critical"
    kind, message = events("billing-1")[-1]
    assert kind == "status" and "not confirmed by Consul" in message
    assert balancing.discover("billing", status=["passing", "warning"]) == []

    sweeps.health_sweep(now=confirmed + timedelta(seconds=3601), probe=False)
    assert not ServiceInstance.objects.exists()
    assert events("billing-1")[-1][0] == "evicted"


def test_our_writes_cannot_overwrite_what_consul_says_of_its_instances(db, consul, operator_client):
    billing(consul)
    sync(consul)
    assert status("billing-1") == "critical"

    with pytest.raises(DomainError) as refused:
        registration.service_heartbeat(service_id="billing-1")
    assert refused.value.code == "managed_by_consul"
    response = operator_client.put("/api/v1/services/maintenance/billing-1", data='{"enable": true}',
                                   content_type="application/json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "managed_by_consul"
    assert status("billing-1") == "critical" and ServiceInstance.objects.get().last_heartbeat is not None


def test_the_admin_says_why_a_consul_instance_keeps_its_maintenance(db, consul, operator_client):
    billing(consul)
    register("stats-1", checks=[])
    sync(consul, push=False)
    ids = [str(pk) for pk in ServiceInstance.objects.order_by("service_id").values_list("pk", flat=True)]

    response = operator_client.post("/admin/services/serviceinstance/",
                                    {"action": "maintenance_on", "_selected_action": ids}, follow=True)

    page = response.content.decode()
    assert response.status_code == 200 and "1 instance(s) in maintenance" in page and "mirrored from Consul" in page
    assert dict(ServiceInstance.objects.values_list("service_id", "maintenance")) == {"billing-1": False,
                                                                                    "stats-1": True}
