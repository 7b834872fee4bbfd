"""What an operator and a tenant admin look at, in Chromium at 1,400 px (screenshots in var/screenshots/)."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests.conftest import make_user
from tests.console.browser import browser, log_in, screenshot, scrolls_sideways  # noqa: F401
from tests.console.conftest import ledger, put_on_plan, utc_today

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_operator_reads_the_dashboard_figures_the_database_holds(live_server, browser, tenant_lakers,  # noqa: F811
                                                                     tenant_warriors):
    put_on_plan(tenant_lakers, "PROFESSIONAL")
    put_on_plan(tenant_warriors, "FREE")
    ledger(tenant_lakers, utc_today(), api_calls=321, refused_burst=5)
    make_user("public", username="operator", superuser=True)
    log_in(browser, live_server.url, "operator")
    browser.get(f"{live_server.url}/admin/")
    card = browser.find_element(By.ID, "courtside-dashboard")
    figure = {e.get_attribute("data-figure"): e.text for e in card.find_elements(By.CSS_SELECTOR, "[data-figure]")}
    assert figure["tenants_total"] == "2" and figure["calls_today"] == "321 today"
    assert figure["refusals_total"] == "5"
    assert figure["mrr"].startswith("$") and "," in figure["mrr"] or figure["mrr"].endswith(".00")
    assert card.find_elements(By.CSS_SELECTOR, "svg.courtside-chart rect.bar")  # the 30-day chart drew a bar
    assert not scrolls_sideways(browser)
    screenshot(browser, "dashboard")
    # A figure is a link to its list: the suspended count opens the filtered tenant list.
    card.find_element(By.CSS_SELECTOR, '[data-figure="tenants_active"]').click()
    assert "status__exact=active" in browser.current_url
    assert "lakers" in browser.find_element(By.ID, "result_list").text


def test_the_operator_pages_fit_1400_px_and_are_captured(live_server, browser, tenant_lakers):  # noqa: F811
    import datetime as dt

    from django.utils import timezone

    from tasks import actions
    from tasks.models import Status, TaskAttempt, TaskRun

    put_on_plan(tenant_lakers, "STARTER")
    ledger(tenant_lakers, utc_today(), api_calls=40)
    run = actions.task_submit(name="system.noop", tenant=tenant_lakers, by_operator=True)
    TaskRun.objects.filter(pk=run.pk).update(status=Status.FAILED, finished_at=timezone.now(), attempts=1,
                                             error="ValueError: no such season",
                                             traceback="Traceback (most recent call last):\n  ...\nValueError")
    TaskAttempt.objects.create(run=run, number=1, outcome=TaskAttempt.Outcome.FAILED, worker_pid=4242,
                               started_at=timezone.now() - dt.timedelta(seconds=3), finished_at=timezone.now(),
                               error="ValueError: no such season")
    make_user("public", username="operator", superuser=True)
    log_in(browser, live_server.url, "operator")
    pages = {
        "task_run": (f"/admin/tasks/taskrun/{run.pk}/change/", "Task run system.noop"),
        "workers": ("/admin/tasks/taskrun/workers/", "Task workers"),
        "migration_summary": ("/admin/schemas/migrationrecord/summary/", "tenant schemas current"),
        "statement": (f"/admin/tenants/tenant/{tenant_lakers.pk}/statement/", "Statement of"),
        "tenant_list": ("/admin/tenants/tenant/", "lakers"),
        "task_run_list": ("/admin/tasks/taskrun/", "system.noop"),
    }
    for name, (path, text) in pages.items():
        browser.get(f"{live_server.url}{path}")
        assert text in browser.find_element(By.TAG_NAME, "body").text, name
        screenshot(browser, name)
        assert not scrolls_sideways(browser), f"{name} scrolls sideways at 1,400 px"
