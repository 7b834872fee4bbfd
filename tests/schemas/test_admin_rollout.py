"""The operator admin's rollout form: a dry-run plan, a staged rollout (canary then the rest), undo per schema."""

import re
from io import StringIO

from django.core.management import call_command

from schemas.models import MigrationRecord, Rollout
from tests.conftest import PUBLIC_HOST, TenantClient, make_user

from .conftest import MIGRATIONS
from .test_rollout import CONCURRENT_INDEX

START = "/admin/schemas/rollout/start/"


def _runs():
    from tasks.models import TaskRun

    return TaskRun.objects.filter(name="schemas.rollout").order_by("created_at")


def _execute_last():
    from tasks.engine.execution import run_execute

    run = _runs().last()
    state = run_execute(run_id=run.pk)  # the queue is not under test: the task's own code runs here
    run.refresh_from_db()
    return state, run


def test_the_dry_run_shows_stages_migrations_types_and_non_atomic_ones_and_changes_nothing(probe, operator_client):
    probe.write("0002_concurrent_index", CONCURRENT_INDEX)

    page = operator_client.post(START, {"action": "plan", "canary_percent": "50"})

    html = page.content.decode()
    assert page.status_code == 200
    assert "Plan: 2 schema(s) to change" in html and "canary of 1" in html
    rows = re.findall(r"<tr><td>(\w+)</td><td>(\w+)</td>\s*<td>(.*?)</td></tr>", html, re.S)
    assert [(schema, stage) for schema, stage, _ in rows] == [("lakers", "canary"), ("warriors", "rest")]
    assert "Apply courtside_probe.0001_initial <small>(schema)</small>" in rows[0][2]
    assert "Apply courtside_probe.0002_concurrent_index <small>(schema, NON-ATOMIC)</small>" in rows[0][2]
    assert "Non-atomic" in html and "courtside_probe.0002_concurrent_index" in html
    assert probe.applied("lakers") == probe.applied("warriors") == set()  # a dry run
    assert not _runs().exists() and not Rollout.objects.exists()


def test_a_staged_rollout_does_the_canary_then_resumes_for_the_rest(probe, operator_client):
    page = operator_client.post(START, {"action": "Start rollout", "canary": "1", "stop_after_canary": "on"})
    assert page.status_code == 302
    assert _runs().last().arguments == {"operator": "operator", "canary": 1, "stop_after_canary": True}

    state, run = _execute_last()
    assert state == "succeeded" and run.result["canary_left"] == 1
    assert run.result["halted"] == "canary done; 1 schema(s) left: resume the rollout for the rest"
    assert probe.applied("lakers") == {"0001_initial"} and probe.applied("warriors") == set()
    rollout = Rollout.objects.get()  # the canary's phase, the rest listed on it as pending
    assert rollout.status == "partial" and rollout.phase["stage"] == "canary"
    assert {s: r["status"] for s, r in rollout.results.items()} == {"lakers": "ok", "warriors": "pending"}

    assert operator_client.post(START, {"action": "Start rollout", "resume": "on"}).status_code == 302
    assert _runs().count() == 2
    state, run = _execute_last()
    assert state == "succeeded" and run.result["migrated"] == 1
    assert probe.applied("warriors") == {"0001_initial"}
    rollout.refresh_from_db()  # the canary's row settled from the rest's phases
    assert rollout.status == "succeeded" and rollout.done == 2
    assert rollout.results["warriors"] == {"status": "ok", "error": "", "applied": ["courtside_probe.0001_initial"]}
    rest = Rollout.objects.latest("id")
    assert set(rest.results) == {"warriors"} and rest.status == "succeeded" and rest.phase["stage"] == "rest"
    refused = operator_client.post(START, {"action": "Start rollout", "resume": "on", "canary": "1"})
    assert "give no canary" in refused.content.decode() and _runs().count() == 2


def test_the_staged_rollout_halts_at_the_canarys_failure_and_the_other_tenant_is_untouched(probe, operator_client):
    call_command("rollout", stdout=StringIO(), stderr=StringIO())
    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    probe.write("0003_unique_name", MIGRATIONS["0003_unique_name"])
    probe.execute("lakers", "INSERT INTO courtside_probe_gadget (name) VALUES ('ball'), ('ball')")

    operator_client.post(START, {"action": "Start rollout", "canary_percent": "50"})
    state, run = _execute_last()

    assert state == "failed" and "canary failed in lakers" in run.error
    assert probe.applied("lakers") == {"0001_initial"}  # wholly on its old state
    assert probe.applied("warriors") == {"0001_initial"}  # the rest never started
    rollout = Rollout.objects.order_by("-id").first()
    assert rollout.results == {"lakers": {"status": "failed", "error": rollout.results["lakers"]["error"],
                                          "applied": []}}  # the canary's phase: the rest never started


def test_undo_in_one_schema_reverses_what_the_rollout_applied_there_only(probe, operator_client):
    call_command("rollout", stdout=StringIO(), stderr=StringIO())
    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    call_command("rollout", stdout=StringIO(), stderr=StringIO())
    rollout = Rollout.objects.order_by("-id").first()

    page = operator_client.get(f"/admin/schemas/rollout/{rollout.pk}/change/").content.decode()
    assert "Undo in lakers" in page and "Undo in warriors" in page and "csrfmiddlewaretoken" in page

    done = operator_client.post(f"/admin/schemas/rollout/{rollout.pk}/undo/", {"schema": "lakers"}, follow=True)

    assert "Undone in lakers: courtside_probe.0002_gadget_size" in done.content.decode()
    assert probe.applied("lakers") == {"0001_initial"} and probe.columns("lakers") == {"id", "name"}
    assert probe.applied("warriors") == {"0001_initial", "0002_gadget_size"}  # the other tenant keeps it
    assert MigrationRecord.objects.get(schema_name="lakers", name="0002_gadget_size").outcome == "undone"

    again = operator_client.post(f"/admin/schemas/rollout/{rollout.pk}/undo/", {"schema": "nosuch"}, follow=True)
    assert "Not a tenant schema: nosuch" in again.content.decode()


def test_bad_input_is_a_form_error_and_queues_nothing(probe, operator_client):
    for data, message in (({"canary": "0"}, "greater than or equal to 1"),
                          ({"canary_percent": "101"}, "less than or equal to 100"),
                          ({"canary": "1", "canary_percent": "10"}, "not both"),
                          ({"schemas": "nosuch"}, "Not a tenant schema: nosuch"),
                          ({"targets": "courtside_probe.9999"}, "courtside_probe.9999")):
        page = operator_client.post(START, {"action": "Start rollout", **data})
        assert page.status_code == 200 and message in page.content.decode(), data
    assert not _runs().exists() and probe.applied("lakers") == set()


def test_the_form_needs_csrf_and_a_superuser(probe, public_tenant):
    strict = TenantClient(PUBLIC_HOST, enforce_csrf_checks=True)
    strict.login_user(make_user("public", username="op2", superuser=True), "public")
    assert strict.post(START, {"action": "Start rollout"}).status_code == 403
    staff = TenantClient(PUBLIC_HOST)
    staff.login_user(make_user("public", username="staffer", staff=True), "public")
    assert staff.post(START, {"action": "Start rollout"}).status_code == 403
    assert not _runs().exists()
