"""Health checking: TTL expiry and eviction, HTTP and TCP probes with flap damping, self-preservation.

Time is passed to the sweep as `now` instead of sleeping: the sweep compares
heartbeats and due times against it, so the test walks through minutes of
registry life without waiting for them. The probes themselves are real.
"""

from datetime import timedelta

from django.utils import timezone

from registry import registration, sweeps
from registry.models import CheckResult, HealthCheck, RegistryEvent, SelfPreservation, ServiceInstance
from tests.registry.conftest import register, sweep


def status_of(service_id: str) -> str:
    return ServiceInstance.objects.get(service_id=service_id).status


def test_ttl_expiry_turns_critical_then_deregisters_after_the_grace(db):
    register("stats-1", checks=[{"kind": "ttl", "ttl": "10s", "deregister_critical_after": "60s"}])
    registration.service_heartbeat(service_id="stats-1")
    assert status_of("stats-1") == "passing"
    beat = ServiceInstance.objects.get().last_heartbeat

    sweeps.health_sweep(now=beat + timedelta(seconds=9), probe=False)
    assert status_of("stats-1") == "passing"

    report = sweeps.health_sweep(now=beat + timedelta(seconds=11), probe=False)
    assert report.ttl_expired == 1 and status_of("stats-1") == "critical"

    sweeps.health_sweep(now=beat + timedelta(seconds=11 + 59), probe=False)  # still within the grace
    assert ServiceInstance.objects.filter(service_id="stats-1").exists()

    report = sweeps.health_sweep(now=beat + timedelta(seconds=11 + 61), probe=False)
    assert report.evicted == ["stats-1"]
    assert not ServiceInstance.objects.exists()
    event = RegistryEvent.objects.get(kind="evicted")
    assert event.service_id == "stats-1" and "grace 60 s" in event.message


def test_a_heartbeat_after_expiry_brings_the_instance_back(db):
    register("stats-1", checks=[{"kind": "ttl", "ttl": "10s", "successes_before_passing": 2}])
    registration.service_heartbeat(service_id="stats-1")
    registration.service_heartbeat(service_id="stats-1")
    beat = ServiceInstance.objects.get().last_heartbeat
    sweeps.health_sweep(now=beat + timedelta(seconds=30), probe=False)
    assert status_of("stats-1") == "critical"

    assert registration.service_heartbeat(service_id="stats-1") == "critical"  # damped: one success is not enough
    assert registration.service_heartbeat(service_id="stats-1") == "passing"


def test_an_http_check_follows_200_500_and_a_hang_with_flap_damping(db, probe_target):
    register("stats-1", checks=[{"kind": "http", "url": probe_target.url, "interval": "10s", "timeout": "0.5s",
                                 "successes_before_passing": 2, "failures_before_critical": 2}])
    clock = timezone.now()

    def sweep():
        nonlocal clock
        clock += timedelta(seconds=10)
        sweeps.health_sweep(now=clock)
        return status_of("stats-1")

    assert status_of("stats-1") == "critical"  # new instances start critical
    assert sweep() == "critical"  # one 200: damped
    assert sweep() == "passing"
    probe_target.mode = "error"
    assert sweep() == "passing"  # one 500: damped
    assert sweep() == "critical"
    probe_target.mode = "ok"
    assert sweep() == "critical"
    assert sweep() == "passing"
    probe_target.mode = "hang"  # answers after 2 s; the check gives up after 0.5 s
    assert sweep() == "passing"
    assert sweep() == "critical"
    check = HealthCheck.objects.get()
    assert "timed out after 0.5 s" in check.output
    history = list(CheckResult.objects.filter(health_check=check).order_by("at", "id").values_list("ok", "status"))
    assert history == [(True, "critical"), (True, "passing"), (False, "passing"), (False, "critical"),
                       (True, "critical"), (True, "passing"), (False, "passing"), (False, "critical")]


def test_http_checks_of_many_instances_run_concurrently(db, probe_target):
    probe_target.mode = "slow"  # each answer takes 0.3 s
    for n in range(12):
        register(f"stats-{n}", checks=[{"kind": "http", "url": probe_target.url, "interval": "10s", "timeout": "5s"}])

    report = sweeps.health_sweep()

    assert report.probed == 12
    assert probe_target.max_in_flight > 1  # one after the other would never overlap
    assert set(ServiceInstance.objects.values_list("status", flat=True)) == {"passing"}


def test_a_tcp_check_passes_on_an_open_port_and_fails_on_a_closed_one(db, open_port, closed_port):
    register("open", checks=[{"kind": "tcp", "tcp": f"127.0.0.1:{open_port}", "interval": "5s", "timeout": "1s"}])
    register("closed", checks=[{"kind": "tcp", "tcp": f"127.0.0.1:{closed_port}", "interval": "5s",
                                "timeout": "1s"}])
    ServiceInstance.objects.filter(service_id="closed").update(status="passing")
    HealthCheck.objects.filter(instance__service_id="closed").update(status="passing")

    sweeps.health_sweep()

    assert status_of("open") == "passing"
    assert status_of("closed") == "critical"
    assert "Connect" in HealthCheck.objects.get(instance__service_id="closed").output or \
        "refused" in HealthCheck.objects.get(instance__service_id="closed").output.lower()


def _fleet(count: int, *, ttl: str = "10s", grace: str = "20s"):
    for n in range(count):
        register(f"stats-{n}", checks=[{"kind": "ttl", "ttl": ttl, "deregister_critical_after": grace}])
        registration.service_heartbeat(service_id=f"stats-{n}")
    return ServiceInstance.objects.order_by("last_heartbeat").last().last_heartbeat


def _beat_at(ids, at):
    ServiceInstance.objects.filter(service_id__in=ids).update(last_heartbeat=at)


def test_self_preservation_starts_under_mass_heartbeat_loss_and_ends_on_recovery(operator_client):
    start = _fleet(10)
    survivors = [f"stats-{n}" for n in range(5)]

    # Half the fleet stops heartbeating at once (a partition between them and us).
    _beat_at(survivors, start + timedelta(seconds=10))
    report = sweeps.health_sweep(now=start + timedelta(seconds=12), probe=False)
    assert report.self_preservation == {"stats-api": True}
    assert report.ttl_expired == 0  # nobody is marked down while the registry preserves itself
    state = SelfPreservation.objects.get(service_name="stats-api")
    assert (state.active, state.missed, state.total) == (True, 5, 10)
    page = operator_client.get("/admin/services/serviceinstance/").content.decode()
    assert "Self-preservation" in page and "5 of 10 instances" in page

    # Past every grace period: still nobody evicted.
    report = sweeps.health_sweep(now=start + timedelta(seconds=45), probe=False)
    assert report.evicted == [] and ServiceInstance.objects.count() == 10

    # Heartbeats come back: self-preservation ends.
    _beat_at([f"stats-{n}" for n in range(10)], start + timedelta(seconds=46))
    report = sweeps.health_sweep(now=start + timedelta(seconds=47), probe=False)
    assert report.self_preservation == {"stats-api": False}
    assert set(ServiceInstance.objects.values_list("status", flat=True)) == {"passing"}
    kinds = list(RegistryEvent.objects.filter(kind__startswith="self_").order_by("at").values_list("kind", flat=True))
    assert kinds == ["self_preservation_on", "self_preservation_off"]
    assert "Self-preservation" not in operator_client.get("/admin/services/serviceinstance/").content.decode()


def test_a_single_missed_heartbeat_is_not_a_partition(db):
    start = _fleet(10)
    _beat_at([f"stats-{n}" for n in range(1, 10)], start + timedelta(seconds=10))  # 1 of 10 = 10% < 15%

    report = sweeps.health_sweep(now=start + timedelta(seconds=12), probe=False)

    assert report.self_preservation == {"stats-api": False}
    assert status_of("stats-0") == "critical"
    _beat_at([f"stats-{n}" for n in range(1, 10)], start + timedelta(seconds=30))
    report = sweeps.health_sweep(now=start + timedelta(seconds=12 + 21), probe=False)
    assert "stats-0" in report.evicted


def test_self_preservation_is_per_service(db):
    start = _fleet(4)
    register("billing-1", name="billing", checks=[{"kind": "ttl", "ttl": "10s"}])
    registration.service_heartbeat(service_id="billing-1")
    ServiceInstance.objects.filter(name="billing").update(last_heartbeat=start + timedelta(seconds=10))

    report = sweeps.health_sweep(now=start + timedelta(seconds=12), probe=False)

    assert report.self_preservation == {"stats-api": True, "billing": False}
    assert status_of("billing-1") == "passing"


def test_the_sweep_task_keeps_sweeping_only_while_checks_fall_due_within_its_budget(db, probe_target):
    assert sweep(budget=5)["sweeps"] == 1  # nothing registered: one sweep, worker freed

    register("stats-1", checks=[{"kind": "http", "url": probe_target.url, "interval": "1s", "timeout": "1s"}])
    result = sweep(budget=2.5)

    assert result["sweeps"] >= 2 and result["probed"] >= 2
    assert status_of("stats-1") == "passing"


def test_a_second_sweeper_steps_aside_while_one_runs(db):
    import psycopg

    from registry import tasks
    from tests.conftest import connection_params

    with psycopg.connect(**connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [tasks.SWEEP_LOCK_KEY])
        assert sweep(budget=0) == {"skipped": "another sweep is running"}
        other.execute("SELECT pg_advisory_unlock(%s)", [tasks.SWEEP_LOCK_KEY])
    assert sweep(budget=0)["sweeps"] == 1


def test_old_registry_events_are_pruned(db):
    register("stats-1")
    RegistryEvent.objects.update(at=timezone.now() - timedelta(days=31))
    register("stats-2")

    assert sweeps.events_prune() == 1
    assert list(RegistryEvent.objects.values_list("service_id", flat=True)) == ["stats-2"]


def test_system_checks_refuse_settings_that_would_misbehave(settings):
    from registry.checks import check_settings

    assert check_settings() == []
    settings.SERVICES = {"SELF_PRESERVATION_THRESHOLD": 15, "MIN_CHECK_INTERVAL": 0, "SELF_TTL": 5.0}
    assert {finding.id for finding in check_settings()} == {"services.E002", "services.E003", "services.W001"}
