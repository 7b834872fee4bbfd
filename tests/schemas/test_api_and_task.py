"""Operator API (status, history, rollouts) and the rollout started from the admin as a background task."""

from io import StringIO

from django.core.management import call_command

from schemas.models import Rollout

from .conftest import MIGRATIONS


def test_the_status_api_reports_pending_and_problem_schemas(probe, operator_client):
    call_command("rollout", schemas=["lakers"], stdout=StringIO(), stderr=StringIO())

    body = operator_client.get("/api/v1/schemas/status/", {"schema": ["lakers", "warriors"]}).json()
    by_schema = {s["schema"]: s for s in body["schemas"]}
    assert by_schema["lakers"]["pending"] == []
    assert by_schema["warriors"]["pending"] == ["courtside_probe.0001_initial"]

    problems = operator_client.get("/api/v1/schemas/status/", {"schema": ["lakers", "warriors"], "problems": "1"})
    assert [s["schema"] for s in problems.json()["schemas"]] == ["warriors"]


def test_the_history_api_lists_one_schemas_ledger_only(probe, operator_client):
    call_command("rollout", stdout=StringIO(), stderr=StringIO())

    rows = operator_client.get("/api/v1/schemas/warriors/history/").json()["results"]

    assert {r["schema_name"] for r in rows} == {"warriors"}
    assert any(r["app_label"] == "courtside_probe" and r["outcome"] == "applied" for r in rows)


def test_the_schemas_api_is_for_operators_only_and_absent_from_tenant_sites(probe, public_tenant, lakers_client):
    from tests.conftest import PUBLIC_HOST, TenantClient

    assert lakers_client.get("/api/v1/schemas/status/").status_code == 404
    assert lakers_client.get("/api/v1/schemas/warriors/history/").status_code == 404
    anonymous = TenantClient(PUBLIC_HOST)
    refused = anonymous.get("/api/v1/schemas/status/")
    assert refused.status_code in (401, 403) and "error" in refused.json()


def test_a_rollout_started_from_the_admin_runs_as_a_task_and_reports_progress(probe, operator_client):
    from tasks.engine.execution import run_execute
    from tasks.models import TaskRun

    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    page = operator_client.post("/admin/schemas/rollout/start/", {"targets": "", "schemas": ""})
    assert page.status_code == 302

    run = TaskRun.objects.get(name="schemas.rollout")
    assert run.arguments == {"operator": "operator"}
    # The queue is not what is under test here: the task's own code runs in this process.
    assert run_execute(run_id=run.pk) == "succeeded"

    run.refresh_from_db()
    assert run.progress == 1.0 and run.result["migrated"] == 2
    assert probe.applied("warriors") == {"0001_initial", "0002_gadget_size"}
    assert Rollout.objects.get().started_by == "operator"
    listing = operator_client.get("/admin/schemas/rollout/").content.decode()
    assert "2/2" in listing and "Succeeded" in listing


def test_the_start_form_refuses_a_bad_target_without_queueing(probe, operator_client):
    from tasks.models import TaskRun

    page = operator_client.post("/admin/schemas/rollout/start/", {"targets": "no-dots-here"})

    assert page.status_code == 200
    assert "no-dots-here" in page.content.decode() and "give a target as app.migration_name" in page.content.decode()
    assert not TaskRun.objects.filter(name="schemas.rollout").exists()
