"""In Chromium at 1,400 px: the operator picks a migration, reads the dry-run plan, then rolls it out in stages.

A real migration (the probe app's 0002, and a non-atomic 0003 that builds an index CONCURRENTLY) across the
test's tenant schemas: dry run (the plan, NON-ATOMIC marked, nothing changed), a staged rollout with a canary
of 50 % stopping after it (canary done, the rest pending), resume, every schema current. The queue is not under
test: the `schemas.rollout` run the form queued is executed here by the task layer's own worker code, as in
tests/schemas/test_admin_rollout.py. Screenshots: rollout_dry_run.png, rollout_staged.png, rollout_done.png.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import make_user
from tests.console.browser import browser, log_in, screenshot, scrolls_sideways  # noqa: F401 - browser is a fixture

from .conftest import MIGRATIONS
from .test_rollout import CONCURRENT_INDEX

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TARGET = "courtside_probe.0003_name_index"
NAME_INDEX = CONCURRENT_INDEX.replace('("courtside_probe", "0001_initial")', '("courtside_probe", "0002_gadget_size")')


def _execute_queued_rollout():
    """What a cluster worker does with the run the form queued: the task's own code, in this process."""
    from tasks.engine.execution import run_execute
    from tasks.models import TaskRun

    run = TaskRun.objects.filter(name="schemas.rollout").order_by("created_at").last()
    state = run_execute(run_id=run.pk)
    run.refresh_from_db()
    return state, run


def _text(driver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def _schema_statuses(driver) -> dict[str, str]:
    rows = driver.find_elements(By.CSS_SELECTOR, "#rollout-schemas tbody tr")
    return {cells[0].text: cells[1].text for cells in (row.find_elements(By.TAG_NAME, "td") for row in rows)}


def test_the_operator_dry_runs_then_rolls_out_a_migration_canary_first_and_resumes(live_server, browser,  # noqa: F811
                                                                                    probe):
    from schemas.models import Rollout

    call_command("rollout", stdout=StringIO(), stderr=StringIO())  # 0001 everywhere: the app exists
    before = Rollout.objects.count()
    probe.write("0002_gadget_size", MIGRATIONS["0002_gadget_size"])
    probe.write("0003_name_index", NAME_INDEX)
    make_user("public", username="operator", superuser=True)
    log_in(browser, live_server.url, "operator")
    # A wait may read the page while a form's POST replaces it: an element of the old page is stale, look again.
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))

    # Before: the migration summary has the two new migrations pending in both schemas.
    browser.get(f"{live_server.url}/admin/schemas/migrationrecord/summary/")
    pending = browser.find_element(By.ID, "pending-migrations").text
    assert "courtside_probe 0002_gadget_size" in pending and "courtside_probe 0003_name_index" in pending, pending

    # The rollouts list → the form. The operator picks the migration and a canary of 50 %.
    browser.get(f"{live_server.url}/admin/schemas/rollout/")
    browser.find_element(By.CSS_SELECTOR, '.object-tools a[href$="/rollout/start/"]').click()
    form = wait.until(lambda b: b.find_element(By.ID, "rollout-form"))
    form.find_element(By.NAME, "targets").send_keys(TARGET)
    form.find_element(By.NAME, "canary_percent").send_keys("50")
    form.find_element(By.NAME, "stop_after_canary").click()
    form.find_element(By.ID, "dry-run").click()

    heading = wait.until(lambda b: b.find_element(By.ID, "plan"))
    assert "Plan: 2 schema(s) to change" in heading.text and "canary of 1" in heading.text
    rows = browser.find_elements(By.CSS_SELECTOR, "#plan-table tbody tr")
    plan = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [(schema, stage) for schema, stage, _ in plan] == [("lakers", "canary"), ("warriors", "rest")]
    for _, _, steps in plan:
        assert steps.splitlines() == ["Apply courtside_probe.0002_gadget_size (schema)",
                                      "Apply courtside_probe.0003_name_index (schema, NON-ATOMIC)"]
    assert TARGET in browser.find_element(By.CSS_SELECTOR, "p.warning").text  # the non-atomic one, named
    assert "Dry run: nothing was changed." in _text(browser)
    assert probe.applied("lakers") == probe.applied("warriors") == {"0001_initial"}
    assert Rollout.objects.count() == before
    assert not scrolls_sideways(browser)
    screenshot(browser, "rollout_dry_run")

    # The same form, kept as typed: start it for real. The canary goes, then it stops.
    assert browser.find_element(By.NAME, "targets").get_attribute("value") == TARGET
    browser.find_element(By.ID, "start-rollout").click()
    wait.until(lambda b: "Rollout queued as task run" in _text(b))
    state, run = _execute_queued_rollout()
    assert state == "succeeded" and run.result["halted"].startswith("canary done"), run.error

    browser.refresh()
    rollout = Rollout.objects.order_by("-id").first()
    browser.find_element(By.CSS_SELECTOR, f'#result_list a[href$="/{rollout.pk}/change/"]').click()
    wait.until(lambda b: b.find_elements(By.ID, "rollout-schemas"))
    assert _schema_statuses(browser) == {"lakers": "ok", "warriors": "pending"}
    assert "Partial (canary" in browser.find_element(By.CSS_SELECTOR, ".field-status").text
    assert probe.applied("lakers") == {"0001_initial", "0002_gadget_size", "0003_name_index"}
    assert probe.applied("warriors") == {"0001_initial"}  # the rest waits for the operator
    assert not scrolls_sideways(browser)
    screenshot(browser, "rollout_staged")

    # Resume: the rest of the same rollout.
    browser.get(f"{live_server.url}/admin/schemas/rollout/start/")
    browser.find_element(By.NAME, "resume").click()
    browser.find_element(By.ID, "start-rollout").click()
    wait.until(lambda b: "Rollout queued as task run" in _text(b))
    state, run = _execute_queued_rollout()
    assert state == "succeeded" and run.result["migrated"] == 1, run.error

    browser.get(f"{live_server.url}/admin/schemas/rollout/{rollout.pk}/change/")
    assert _schema_statuses(browser) == {"lakers": "ok", "warriors": "ok"}
    assert "Succeeded" in browser.find_element(By.CSS_SELECTOR, ".field-status").text
    assert probe.applied("warriors") == {"0001_initial", "0002_gadget_size", "0003_name_index"}

    # Every schema current: the probe app is gone from the summary's pending list, and a dry run has nothing left to do.
    browser.get(f"{live_server.url}/admin/schemas/migrationrecord/summary/")
    pending = browser.find_element(By.ID, "pending-migrations").text
    assert "courtside_probe" not in pending, pending  # (the test database's ledger lacks the stock apps' rows)
    screenshot(browser, "rollout_done")
    browser.get(f"{live_server.url}/admin/schemas/rollout/start/")
    browser.find_element(By.NAME, "targets").send_keys(TARGET)
    browser.find_element(By.ID, "dry-run").click()
    assert "Plan: 0 schema(s) to change, 2 already at the target" in wait.until(
        lambda b: b.find_element(By.ID, "plan")).text
