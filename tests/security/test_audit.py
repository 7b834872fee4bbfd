"""The audit log: who, when, from where, old -> new (secrets masked), from the admin, the API and commands."""

from __future__ import annotations

import base64
import datetime as dt
import os
import subprocess
import sys

import pytest
from auditlog.models import LogEntry
from axes.models import AccessLog
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from django_tenants.utils import schema_context

from configuration import config
from core.masking import MASK
from security import audit
from tasks import actions as task_actions
from tasks import registry
from tasks.models import TaskRun, TaskSchedule
from tenants import quotas
from tenants import services as tenant_services
from tenants.models import ApiKey, Plan, Tenant
from tests.conftest import TenantClient, database_url, make_user, tenant_host


def _basic(username: str, password: str = "pass-word-123") -> dict:
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def _entries(schema: str, model) -> list[LogEntry]:
    with schema_context(schema):
        content_type = ContentType.objects.get_for_model(model)
        return list(LogEntry.objects.filter(content_type=content_type).select_related("actor").order_by("pk"))


def test_an_operator_admin_write_records_who_when_where_and_old_to_new(operator_client):
    plan = Plan.objects.get(code="STARTER")
    data = {field: getattr(plan, field) if getattr(plan, field) is not None else ""
            for field in ("code", "name", *quotas.plan_limit_fields())}
    response = operator_client.post(f"/admin/tenants/plan/{plan.pk}/change/",
                                    {**data, "monthly_price_cents": 4900, "api_calls_per_day": 12000},
                                    REMOTE_ADDR="198.51.100.23")
    assert response.status_code == 302, response.content.decode()[:1000]
    entry = _entries("public", Plan)[-1]
    assert entry.action == LogEntry.Action.UPDATE
    assert entry.changes["api_calls_per_day"] == ["10000", "12000"]
    assert entry.actor.username == "operator" and entry.additional_data["via"] == "admin"
    assert entry.remote_addr == "198.51.100.23"
    assert timezone.now() - entry.timestamp < dt.timedelta(minutes=1)
    listed = operator_client.get("/admin/auditlog/logentry/?q=12000").content.decode()
    assert "Starter" in listed and "operator" in listed


def test_a_tenant_admins_api_write_is_logged_in_its_schema_and_the_api_key_hash_never_appears(tenant_lakers):
    make_user("lakers", username="coach", superuser=True)
    client = TenantClient(tenant_host("lakers"))
    response = client.post("/api/v1/config/overrides/", {"key": "reports.max_rows", "value": 500},
                           content_type="application/json", REMOTE_ADDR="203.0.113.5", **_basic("coach"))
    assert response.status_code in (200, 201), response.content.decode()
    from configuration.models import ConfigEntry

    entry = _entries("lakers", ConfigEntry)[-1]
    assert entry.additional_data["actor"] == "coach" and entry.additional_data["via"] == "api"
    assert entry.actor.username == "coach" and entry.remote_addr == "203.0.113.5"
    assert entry.changes["value"][1] == "500"
    assert not _entries("public", ConfigEntry)  # the operator's log holds the operator's writes only

    key, raw = tenant_services.api_key_create(tenant=tenant_lakers, name="dashboard")
    created = _entries("public", ApiKey)[-1]
    assert "secret_hash" not in created.changes and key.secret_hash not in str(created.changes)
    assert raw.split(".", 1)[1] not in str(created.changes) and created.changes["prefix"][1] == key.prefix


def test_secret_configuration_values_are_masked_in_the_stored_diff(operator_client):
    config.set("integrations.stats_provider", {"url": "https://feed.example/v2", "api_token": "tok-123456"},
               changed_by="operator")
    config.set("integrations.stats_provider", {"url": "https://feed.example/v3", "api_token": "tok-999999"},
               changed_by="operator")
    from configuration.models import ConfigEntry

    entries = _entries("public", ConfigEntry)
    stored = " ".join(str(entry.changes) for entry in entries)
    assert "tok-123456" not in stored and "tok-999999" not in stored
    assert MASK in stored and "https://feed.example/v3" in stored
    page = operator_client.get("/admin/auditlog/logentry/").content.decode()
    assert "tok-" not in page


def test_a_password_change_shows_as_changed_and_never_as_a_hash(tenant_lakers):
    user = make_user("lakers", username="coach")
    with schema_context("lakers"):
        user.set_password("another-pass-word-9")
        user.save()
        entry = LogEntry.objects.filter(content_type__model="user").order_by("pk").last()
        assert entry.changes["password"][1] == MASK and "md5$" not in str(entry.changes)


def test_a_tenant_admin_never_sees_another_tenants_audit_entries_and_the_operator_can_switch_sites(
        tenant_lakers, tenant_warriors, lakers_client, warriors_client, operator_client):
    for schema in ("lakers", "warriors"):
        make_user(schema, username=f"{schema}-new-scout")
    lakers_page = lakers_client.get("/admin/auditlog/logentry/").content.decode()
    warriors_page = warriors_client.get("/admin/auditlog/logentry/").content.decode()
    assert "lakers-new-scout" in lakers_page and "warriors-new-scout" not in lakers_page
    assert "warriors-new-scout" in warriors_page and "lakers-new-scout" not in warriors_page
    with schema_context("warriors"):
        foreign = LogEntry.objects.filter(object_repr="warriors-new-scout").get()
    assert lakers_client.get(f"/admin/auditlog/logentry/{foreign.pk}/change/").status_code in (302, 404) or \
        "warriors-new-scout" not in lakers_client.get(f"/admin/auditlog/logentry/{foreign.pk}/change/").content.decode()
    assert "lakers-new-scout" not in operator_client.get("/admin/auditlog/logentry/").content.decode()
    operator_client.get("/admin/auditlog/logentry/?site=lakers")
    switched = operator_client.get("/admin/auditlog/logentry/").content.decode()
    assert "lakers-new-scout" in switched and "warriors-new-scout" not in switched


def test_a_task_cancel_from_the_tenant_api_is_audited(tenant_lakers):
    make_user("lakers", username="coach", superuser=True)
    run = task_actions.task_submit(name="system.sleep", arguments={"seconds": 5}, tenant=tenant_lakers,
                                    run_at=timezone.now() + dt.timedelta(hours=1))
    client = TenantClient(tenant_host("lakers"))
    response = client.post(f"/api/v1/tasks/runs/{run.pk}/cancel/", **_basic("coach"))
    assert response.status_code == 200, response.content.decode()
    entry = _entries("lakers", TaskRun)[-1]
    assert entry.object_pk == str(run.pk) and entry.changes["cancel_requested"] == ["False", "True"]
    assert entry.additional_data["actor"] == "coach"


@pytest.mark.django_db(transaction=True)
def test_a_management_command_write_names_the_operator_running_it(tenant_lakers):
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "backoffice.settings.test",
           "COURTSIDE_OPERATOR": "alice"}
    subprocess.run([sys.executable, "manage.py", "tenant", "plan", "lakers", "STARTER"], cwd=settings.BASE_DIR,
                   env=env, check=True, capture_output=True, timeout=120)
    entry = [e for e in _entries("public", Tenant) if "plan" in (e.changes or {})][-1]
    assert entry.additional_data == {"actor": "alice", "via": "command:tenant", "site": "public"}
    assert entry.actor is None and entry.remote_addr is None


def test_the_prune_keeps_the_retention_in_every_schema_and_is_a_registered_scheduled_task(
        tenant_lakers, tenant_warriors):
    old = timezone.now() - dt.timedelta(days=settings.AUDIT_RETENTION_DAYS + 1)
    for schema in ("public", "lakers", "warriors"):
        make_user(schema, username=f"{schema}-old")
        make_user(schema, username=f"{schema}-recent")
        with schema_context(schema):
            LogEntry.objects.filter(object_repr=f"{schema}-old").update(timestamp=old)
            AccessLog.objects.create(username="x", user_agent="x", http_accept="*", path_info="/", ip_address=None)
            AccessLog.objects.update(attempt_time=old)
    seen = []
    totals = audit.audit_prune(progress=lambda fraction, message: seen.append(fraction))
    assert totals["audit_entries"] == 3 and totals["login_history"] == 3 and seen[-1] == 1.0
    for schema in ("public", "lakers", "warriors"):
        with schema_context(schema):
            assert not LogEntry.objects.filter(object_repr=f"{schema}-old").exists()
            assert LogEntry.objects.filter(object_repr=f"{schema}-recent").exists()
    assert registry.get_spec("security.audit_prune").scope == registry.OPERATOR
    # A system job (security/tasks.py): on the schedules page after migrate, daily at 03:30 UTC, fired as a TaskRun.
    from tasks import runner

    task_actions.system_schedules_reconcile()
    schedule = TaskSchedule.objects.select_related("q_schedule").get(name="security: audit log prune")
    assert (schedule.system, schedule.task_name, schedule.cron) == (True, "security.audit_prune", "30 3 * * *")
    assert schedule.q_schedule.func == "tasks.runner.fire_schedule"
    run = TaskRun.objects.get(pk=runner.fire_schedule(schedule.pk))
    assert run.name == "security.audit_prune" and run.tenant is None and run.schedule_id == schedule.pk
    with pytest.raises(ValueError):
        audit.audit_prune(days=0)




@pytest.mark.django_db(transaction=True)
def test_a_deleted_tenants_audit_log_is_kept_in_its_export(tenant_lakers, settings, tmp_path):
    """Retention outlives the tenant: its schema (and the audit entries in it) is dropped, the export keeps them."""
    import json

    settings.TENANT_EXPORT_DIR = tmp_path
    make_user("lakers", username="coach", superuser=True)
    client = TenantClient(tenant_host("lakers"))
    response = client.post("/api/v1/config/overrides/", {"key": "reports.max_rows", "value": 500},
                           content_type="application/json", **_basic("coach"))
    assert response.status_code in (200, 201), response.content.decode()

    export = tenant_services.tenant_delete(tenant=Tenant.objects.get(schema_name="lakers"), confirm="lakers")

    rows = json.loads(export.read_text())
    logged = [row for row in rows if row["model"] == "auditlog.logentry"]
    assert any((row["fields"]["changes"] or {}).get("value", [None, None])[1] == "500" for row in logged), logged
