"""One task system: every scheduled job is a registered task declared with its schedule, fired as a TaskRun.

The first test is the example a newcomer copies: a new scheduled system job is one decorated function in its
app's tasks.py (here, this file); the next migrate's reconcile puts it on the schedules page.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django_q.models import Schedule

from tasks import actions, registry, runner
from tasks.engine import execution
from tasks.models import Status, TaskRun, TaskSchedule
from tasks.registry import system_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def declared_here():
    """Declare an example system job the way an app's tasks.py does; forget it afterwards."""
    saved = dict(registry._registry), dict(registry._system_schedules)

    @system_job("example.nightly_digest", cron="15 2 * * *", schedule_name="example: nightly digest", timeout=30)
    def nightly_digest(ctx):
        """Write the nightly digest (an example of a scheduled system job)."""
        return {"digest": "written"}

    yield nightly_digest
    for live, kept in zip((registry._registry, registry._system_schedules), saved, strict=True):
        live.clear()
        live.update(kept)


def test_a_new_scheduled_system_job_is_one_declaration_beside_its_task(declared_here, operator_client):
    assert actions.system_schedules_reconcile()["created"] >= 1  # what every migrate does (tasks.apps)
    schedule = TaskSchedule.objects.get(name="example: nightly digest")
    assert schedule.system and schedule.tenant is None and schedule.cron == "15 2 * * *"
    q = Schedule.objects.get(pk=schedule.q_schedule_id)
    assert (q.func, q.args, q.cron) == ("tasks.runner.fire_schedule", repr((schedule.pk,)), "15 2 * * *")

    # django-q2's scheduler fires it: a TaskRun like any other, run and recorded by the task layer.
    run = TaskRun.objects.get(pk=runner.fire_schedule(schedule.pk))
    assert (run.name, run.schedule_id, run.tenant_id) == ("example.nightly_digest", schedule.pk, None)
    assert execution.run_execute(run_id=run.pk) == "succeeded"
    assert TaskRun.objects.get(pk=run.pk).result == {"digest": "written"}

    # On the schedules page with its last and next run, not editable there.
    body = operator_client.get("/admin/tasks/taskschedule/").content.decode()
    assert "example: nightly digest" in body and "System (declared in code)" in body
    page = operator_client.get(f"/admin/tasks/taskschedule/{schedule.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert operator_client.post(f"/admin/tasks/taskschedule/{schedule.pk}/delete/", {"post": "yes"}).status_code == 403

    # Gone from the code, gone from the page at the next reconcile.
    del registry._system_schedules["example: nightly digest"]
    assert actions.system_schedules_reconcile()["removed"] == 1
    assert not TaskSchedule.objects.filter(name="example: nightly digest").exists()
    assert not Schedule.objects.filter(pk=q.pk).exists()


def test_the_products_background_jobs_are_system_schedules_of_registered_tasks(operator_client, lakers_client):
    actions.system_schedules_reconcile()
    system = {s.name: s for s in TaskSchedule.objects.filter(system=True)}
    expected = {"tasks: recover stalled runs": ("tasks.recover_stalled_runs", 1, ""),
                "tasks: prune finished runs": ("tasks.prune_runs", None, "45 3 * * *"),
                "tenants: usage refresh": ("tenants.refresh_storage_usage", 15, ""),
                "tenants: schema pool refill": ("tenants.pool_refill", 10, ""),
                # every 30 s: a six-field cron whose last field is the seconds (croniter's, as TaskSchedule checks)
                "services: health sweep": ("registry.health_sweep", None, "* * * * * */30"),
                "security: audit log prune": ("security.audit_prune", None, "30 3 * * *")}
    assert set(system) == set(expected)  # the Consul sync only where CONSUL_URL is set
    for name, (task, minutes, cron) in expected.items():
        assert (system[name].task_name, system[name].interval_minutes, system[name].cron) == (task, minutes, cron)
        assert system[name].q_schedule.func == "tasks.runner.fire_schedule"
        assert registry.get_spec(task).scope in ("operator", "any")  # a registered task, with its TaskRun
    # No plain django-q2 function is scheduled any more: every system job is a TaskSchedule firing a TaskRun.
    assert not Schedule.objects.exclude(func="tasks.runner.fire_schedule").exists()
    # Reconciling again changes nothing; an operator's switch stays.
    TaskSchedule.objects.filter(name="tenants: usage refresh").update(enabled=False)
    assert actions.system_schedules_reconcile() == {"created": 0, "updated": 0, "removed": 0}
    assert not TaskSchedule.objects.get(name="tenants: usage refresh").enabled

    # The operator sees them; a tenant's schedules page shows its own only (cross-tenant: none of these).
    assert "tasks: recover stalled runs" in operator_client.get("/admin/tasks/taskschedule/").content.decode()
    assert "recover stalled runs" not in lakers_client.get("/admin/tasks/taskschedule/").content.decode()


def test_a_fired_system_schedule_shows_its_last_run(operator_client):
    actions.system_schedules_reconcile()
    schedule = TaskSchedule.objects.get(name="tasks: recover stalled runs")
    run = TaskRun.objects.get(pk=runner.fire_schedule(schedule.pk))
    assert execution.run_execute(run_id=run.pk) == "succeeded"
    assert TaskRun.objects.get(pk=run.pk).result == {"running": 0, "queued": 0}
    body = operator_client.get("/admin/tasks/taskschedule/?system__exact=1").content.decode()
    assert body.count("System (declared in code)") == 6 and body.count(">—<") <= 5  # five never ran


@override_settings(TENANT_POOL_SIZE=2)
def test_a_sign_up_refills_the_pool_through_a_registered_task_with_its_run(public_tenant,
                                                                          django_capture_on_commit_callbacks):
    from tenants.services import _enqueue_pool_refill

    with django_capture_on_commit_callbacks(execute=True):
        _enqueue_pool_refill()  # what tenant_create does once the new tenant is committed
    run = TaskRun.objects.get(name="tenants.pool_refill")
    assert (run.tenant_id, run.status, run.submitted_by) == (None, Status.QUEUED, "tenant sign-up")


@pytest.mark.parametrize("timing", [{}, {"every_minutes": 5, "cron": "0 * * * *"}, {"every_minutes": 0}])
def test_a_system_job_needs_exactly_one_timetable(timing):
    with pytest.raises(ImproperlyConfigured):
        system_job("example.untimed", **timing)


def test_the_registry_schedules_follow_their_settings(settings):
    settings.SERVICES = {"CONSUL_URL": "http://127.0.0.1:9"}
    actions.system_schedules_reconcile()
    consul = TaskSchedule.objects.get(name="services: Consul sync")
    assert (consul.system, consul.task_name, consul.interval_minutes) == (True, "registry.consul_sync", 1)
    # The sweep's 30 s cron passes the validation every schedule passes, and the scheduler's next run is 30 s off.
    actions.schedule_validate(task_name="registry.health_sweep", arguments={}, tenant=None, cron="* * * * * */30",
                              by_operator=True)
    settings.SERVICES = {"AUTO_SCHEDULE": False}
    assert actions.system_schedules_reconcile()["removed"] == 2
    assert not TaskSchedule.objects.filter(task_name__startswith="registry.").exists()


def test_the_migrations_remove_the_plain_django_q_schedules_of_the_registry_and_the_audit_prune():
    import importlib

    from django.apps import apps

    registry_migration = importlib.import_module("registry.migrations.0008_system_schedules_in_code")
    security_migration = importlib.import_module("security.migrations.0002_audit_prune_system_job")
    registry_migration.restore_raw(apps, None)
    security_migration.restore_raw(apps, None)
    old = ["registry.tasks.health_sweep_task", "security.tasks.audit_prune_scheduled"]
    assert Schedule.objects.filter(func__in=old).count() == 2  # what the old code scheduled
    registry_migration.remove_raw(apps, None)
    security_migration.remove_raw(apps, None)
    assert not Schedule.objects.filter(func__in=old).exists()
