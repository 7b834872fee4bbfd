"""Self-preservation in a small service: one death is a death, never a partition (issue 19.3 (c)).

Eureka's rule (more than 15% of a service's heartbeats lapsed within the
window) was written for registries of hundreds of instances. In a service of
two web servers, one of which was killed and restarted (a new instance), one
death is 1 of 3 = 33%: the rule froze expiry for a minute and the rehearsal saw
the killed server passing all that time. A lapse that is alone is a death;
self-preservation needs at least SELF_PRESERVATION_MIN_MISSED (2) lapses at
once. Time is passed to the sweep as `now`, as in test_health.py.
"""

from datetime import timedelta

from registry import registration, sweeps
from registry.models import ServiceInstance
from tests.registry.conftest import register


def _service(ids, *, ttl="10s"):
    for service_id in ids:
        register(service_id, checks=[{"kind": "ttl", "ttl": ttl, "deregister_critical_after": "100s"}])
        registration.service_heartbeat(service_id=service_id)
    return ServiceInstance.objects.order_by("last_heartbeat").last().last_heartbeat


def _beat_at(ids, at):
    ServiceInstance.objects.filter(service_id__in=ids).update(last_heartbeat=at)


def status_of(service_id: str) -> str:
    return ServiceInstance.objects.get(service_id=service_id).status


def test_a_killed_server_of_two_turns_critical_at_the_first_sweep_past_its_ttl_though_its_successor_registered(db):
    # Two web servers; web-a is killed at `start` and restarted as web-a2 (a new instance, a new pid).
    start = _service(["web-a", "web-b", "web-a2"])
    _beat_at(["web-b", "web-a2"], start + timedelta(seconds=10))

    report = sweeps.health_sweep(now=start + timedelta(seconds=10.5), probe=False)  # web-a lapsed at +10

    assert report.self_preservation == {"stats-api": False}  # 1 of 3 missed: 33% > 15%, but one lapse alone
    assert report.ttl_expired == 1
    assert status_of("web-a") == "critical"
    assert (status_of("web-b"), status_of("web-a2")) == ("passing", "passing")


def test_two_lapses_at_once_in_a_small_service_still_preserve_it(db):
    start = _service(["web-a", "web-b", "web-c"])
    _beat_at(["web-c"], start + timedelta(seconds=10))

    report = sweeps.health_sweep(now=start + timedelta(seconds=10.5), probe=False)  # a and b lapsed together

    assert report.self_preservation == {"stats-api": True}
    assert report.ttl_expired == 0
    assert {status_of(s) for s in ("web-a", "web-b", "web-c")} == {"passing"}


def test_the_minimum_of_lapses_is_a_setting(db, settings):
    settings.SERVICES = {"SELF_PRESERVATION_MIN_MISSED": 1}  # Eureka's rule unmodified: any share above 15%
    start = _service(["web-a", "web-b", "web-a2"])
    _beat_at(["web-b", "web-a2"], start + timedelta(seconds=10))

    report = sweeps.health_sweep(now=start + timedelta(seconds=10.5), probe=False)

    assert report.self_preservation == {"stats-api": True}
    assert status_of("web-a") == "passing"


def test_a_minimum_of_lapses_below_one_is_refused_at_start_up(settings):
    from registry.checks import check_settings

    settings.SERVICES = {"SELF_PRESERVATION_MIN_MISSED": 0}
    assert [error.id for error in check_settings()] == ["services.E007"]
