"""Issue 14.3: no registration can disable health checking for everyone.

Every duration and number a client sends is bounded (API, command, admin), and
the sweep survives any stored value: a row written before the bounds existed
is isolated (logged, marked critical with the reason) while every other
instance is still checked, expired and evicted.
"""

import json
import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from registry import health, registration, sweeps
from registry.models import HealthCheck, RegistryEvent, ServiceInstance
from tests.registry.conftest import register, sweep
from tests.registry.test_api import REGISTRATION, assert_error, post_json


@pytest.mark.parametrize(
    "check",
    [
        {"type": "ttl", "ttl": 1e30},
        {"type": "ttl", "ttl": "99999999999h"},
        {"type": "ttl", "ttl": "2d"},
        {"type": "ttl", "ttl": 86_401},
        {"type": "ttl", "ttl": "30s", "deregister_critical_after": 1e30},
        {"type": "ttl", "ttl": "30s", "deregister_critical_after": "31d"},
        {"type": "ttl", "ttl": "30s", "failures_before_critical": 10**12},
        {"type": "ttl", "ttl": "30s", "successes_before_passing": 101},
        {"type": "http", "url": "http://10.0.0.5/health", "interval": 1e30},
        {"type": "http", "url": "http://10.0.0.5/health", "interval": "10s", "timeout": 1e30},
        {"type": "http", "url": "http://10.0.0.5/health", "interval": "10s", "timeout": "61s"},
        {"type": "http", "url": "http://10.0.0.5/health", "interval": "10s", "expected_status": 10**12},
        {"type": "http", "url": "http://10.0.0.5/health", "interval": "10s", "expected_status": 99},
        {"type": "tcp", "tcp": "10.0.0.5:99999999999", "interval": "10s"},
    ],
    ids=["ttl-1e30", "ttl-huge-string", "ttl-2-days", "ttl-a-day-and-a-second", "grace-1e30", "grace-31-days",
         "failures-1e12", "successes-101", "interval-1e30", "timeout-1e30", "timeout-61s", "expected-status-1e12",
         "expected-status-99", "tcp-port-huge"],
)
def test_the_api_refuses_durations_and_numbers_out_of_bounds_and_writes_nothing(service_client, check):
    response = post_json(service_client("stats-api"), "/api/v1/services/register", {**REGISTRATION, "checks": [check]})

    error = assert_error(response, 400, "invalid")
    assert "checks" in error["detail"]
    assert not ServiceInstance.objects.exists() and not HealthCheck.objects.exists()
    assert not RegistryEvent.objects.exists()


def test_too_many_checks_tags_or_metadata_keys_are_refused(service_client):
    client = service_client("stats-api")
    ttl = [{"type": "ttl", "name": f"ttl-{n}", "ttl": "30s"} for n in range(17)]
    for change, field in [({"checks": ttl}, "checks"), ({"tags": [f"t{n}" for n in range(33)]}, "tags"),
                          ({"metadata": {f"k{n}": "v" for n in range(65)}}, "metadata"),
                          ({"metadata": {"k": "v" * 513}}, "metadata"), ({"metadata": {"k" * 129: "v"}}, "metadata")]:
        error = assert_error(post_json(client, "/api/v1/services/register", {**REGISTRATION, **change}), 400)
        assert field in error["detail"], (change, error)
    assert not ServiceInstance.objects.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ttl", "99999999999h"], "interval"),
        (["--ttl", "30s", "--deregister-after", "99999999h"], "deregister_critical_after"),
        (["--http", "http://x.test/", "--timeout", "1000000s"], "timeout"),
        (["--http", "http://x.test/", "--interval", "99999999999h"], "interval"),
        (["--weight", "1000"], "weight"),
    ],
)
def test_the_register_command_refuses_out_of_bound_durations_and_numbers(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("service_register", "stats-api", "--id", "stats-1", "--host", "10.0.0.1", "--port", "8080",
                     *args, stdout=StringIO())
    assert not ServiceInstance.objects.exists()


@pytest.mark.parametrize(("field", "value"), [("metadata", '{"version": 1e999}'), ("metadata", '{"version": -1e999}'),
                                              ("metadata", '{"n": 99999999999999999999}'), ("port", "70000"),
                                              ("port", "1e309"), ("weight", "1000"), ("weight", "0")])
def test_the_admin_refuses_numbers_out_of_range_on_the_form(operator_client, field, value):
    response = operator_client.post("/admin/services/serviceinstance/add/", {
        "service_id": "stats-9", "name": "stats-api", "host": "10.0.0.9", "port": "8081", "tags": "api",
        "metadata": "{}", "weight": "1", field: value,
    })
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not ServiceInstance.objects.exists()


def test_settings_whose_ttl_no_check_may_have_are_refused_at_start_up(settings):
    from registry.checks import check_settings

    settings.SERVICES = {"DEFAULT_TTL": 1e30, "SELF_TTL": 90_000.0}
    assert [finding.id for finding in check_settings()] == ["services.E005", "services.E005"]


# --- stored values: rows written before the bounds existed ---------------------------------------------------------


def _store_as_an_old_row(check: HealthCheck, **values) -> None:
    """Write values the bounds now refuse, as a row from before them: past the model, and past the constraints
    (dropped inside this test's transaction, which rolls back)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending foreign-key checks in the way of ALTER TABLE
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'services_healthcheck'::regclass "
                       "AND contype = 'c'")
        for (name,) in cursor.fetchall():
            cursor.execute(f'ALTER TABLE services_healthcheck DROP CONSTRAINT "{name}"')
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    HealthCheck.objects.filter(pk=check.pk).update(**values)


def _lapsed_fleet():
    """Two instances that stopped heartbeating (one with a grace of 20 s), beside a healthy one."""
    for service_id in ("dead-1", "dead-2", "alive"):
        register(service_id, checks=[{"kind": "ttl", "ttl": "10s", "deregister_critical_after": "20s"}])
        registration.service_heartbeat(service_id=service_id)
    return ServiceInstance.objects.get(service_id="alive").last_heartbeat


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        ("ttl", {"interval": 1e30}),
        ("ttl", {"interval": float("inf")}),
        ("ttl", {"interval": float("nan")}),
        ("ttl", {"interval": -5.0}),
        ("ttl", {"deregister_critical_after": 1e30, "status": "critical"}),
        ("http", {"interval": 1e30}),
        ("http", {"timeout": 1e30}),
    ],
    ids=["ttl-1e30", "ttl-inf", "ttl-nan", "ttl-negative", "grace-1e30", "http-interval-1e30", "http-timeout-1e30"],
)
def test_one_bad_stored_row_cannot_stop_the_sweep_for_everyone(db, probe_target, caplog, kind, values):
    start = _lapsed_fleet()
    if kind == "http":
        register("bad", checks=[{"kind": "http", "url": probe_target.url, "interval": "10s", "timeout": "1s"}])
    else:
        register("bad", checks=[{"kind": "ttl", "ttl": "10s", "deregister_critical_after": "20s"}])
        registration.service_heartbeat(service_id="bad")
    _store_as_an_old_row(HealthCheck.objects.get(instance__service_id="bad"), **values)
    ServiceInstance.objects.filter(service_id__in=["dead-1", "dead-2"]).update(last_heartbeat=start - timedelta(
        seconds=70))
    ServiceInstance.objects.filter(service_id__in=["alive", "bad"]).update(last_heartbeat=start + timedelta(seconds=10))

    with caplog.at_level(logging.WARNING, logger="registry.services"):
        first = sweeps.health_sweep(now=start + timedelta(seconds=12))
        ServiceInstance.objects.filter(service_id__in=["alive", "bad"]).update(
            last_heartbeat=start + timedelta(seconds=30))
        second = sweeps.health_sweep(now=start + timedelta(seconds=12 + 21))

    # Everyone else is judged as usual: the lapsed ones expire, then leave after their grace.
    assert first.ttl_expired == 2 and sorted(second.evicted) == ["dead-1", "dead-2"]
    assert ServiceInstance.objects.get(service_id="alive").status == "passing"
    # The bad row is marked, with the reason, and logged; it does not pass for healthy.
    bad = HealthCheck.objects.get(instance__service_id="bad")
    assert bad.status == "critical" and "out of range" in bad.output
    assert ServiceInstance.objects.get(service_id="bad").status == "critical"
    assert any("out of range" in record.getMessage() for record in caplog.records)
    assert RegistryEvent.objects.filter(kind="invalid", service_id="bad").count() == 1  # marked once, not per sweep
    # The task around the sweep (its wait for the next due check) survives it too.
    assert sweep(budget=0)["sweeps"] == 1


def test_a_bad_row_cannot_stop_self_preservation_either(db):
    start = _lapsed_fleet()
    for n in range(3):
        register(f"extra-{n}", checks=[{"kind": "ttl", "ttl": "10s"}])
        registration.service_heartbeat(service_id=f"extra-{n}")
    _store_as_an_old_row(HealthCheck.objects.get(instance__service_id="extra-0"), interval=1e300)
    ServiceInstance.objects.filter(service_id__in=["dead-1", "dead-2"]).update(
        last_heartbeat=start - timedelta(seconds=70))
    ServiceInstance.objects.exclude(service_id__in=["dead-1", "dead-2"]).update(
        last_heartbeat=start + timedelta(seconds=10))

    report = sweeps.health_sweep(now=start + timedelta(seconds=12), probe=False)

    # Judged: alive, extra-1, extra-2 (the dead lapsed before the window; extra-0 cannot be judged): none missed.
    assert report.self_preservation == {"stats-api": False}
    assert report.ttl_expired == 2


def test_the_api_answers_json_for_a_registration_that_would_overflow(service_client):
    body = json.dumps({**REGISTRATION, "checks": [{"type": "ttl", "ttl": 1e308, "deregister_critical_after": 1e308}]})
    response = service_client("stats-api").post("/api/v1/services/register", data=body,
                                                content_type="application/json")
    assert_error(response, 400, "invalid")


def test_the_migration_clamps_old_rows_into_range_and_records_each(db):
    import importlib

    from django.apps import apps

    migration = importlib.import_module("registry.migrations.0002_registry_bounds_repair_rows")
    start = _lapsed_fleet()
    register("http-1", checks=[{"kind": "http", "url": "http://10.0.0.5/", "interval": "10s", "timeout": "1s"}])
    _store_as_an_old_row(HealthCheck.objects.get(instance__service_id="dead-1"), interval=1e30,
                         deregister_critical_after=float("nan"))
    _store_as_an_old_row(HealthCheck.objects.get(instance__service_id="dead-2"), interval=float("nan"),
                         deregister_critical_after=-3.0)
    _store_as_an_old_row(HealthCheck.objects.get(instance__service_id="http-1"), interval=-1.0, timeout=1e30)

    migration.repair(apps, None)

    def values(service_id):
        return HealthCheck.objects.filter(instance__service_id=service_id).values_list(
            "interval", "timeout", "deregister_critical_after").get()

    assert values("dead-1") == (86_400.0, 5.0, 30 * 86_400.0)
    assert values("dead-2") == (30.0, 5.0, 0.0)
    assert values("http-1") == (1.0, 60.0, None)
    assert values("alive") == (10.0, 5.0, 20.0)  # in range: untouched
    events = RegistryEvent.objects.filter(kind="invalid")
    assert sorted(events.values_list("service_id", flat=True)) == ["dead-1", "dead-2", "http-1"]
    assert "interval 1e+30 s out of range, now 86400 s" in events.get(service_id="dead-1").message
    assert not HealthCheck.objects.filter(health.out_of_range_q()).exists()
    # The instance whose TTL was 1e30 s expires once a day has passed without a heartbeat.
    report = sweeps.health_sweep(now=start + timedelta(days=1, seconds=1), probe=False)
    assert ServiceInstance.objects.get(service_id="dead-1").status == "critical" and report.ttl_expired >= 1


@pytest.mark.parametrize("values", [{"interval": 1e30}, {"interval": float("nan")}, {"timeout": 0.0},
                                    {"deregister_critical_after": float("inf")}])
def test_the_database_refuses_out_of_range_durations_from_any_writer(db, values):
    from django.db import IntegrityError, transaction

    register("stats-1")
    with pytest.raises(IntegrityError, match="services_check_"), transaction.atomic():
        HealthCheck.objects.update(**values)

