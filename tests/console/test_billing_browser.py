"""In Chromium at 1,400 px: a statement with a mid-month upgrade, overage and calls by surface, and the task
submit form refusing a bad argument then submitting (screenshots statement_overage.png, task_submit.png)."""

from __future__ import annotations

import datetime as dt

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import make_user
from tests.console.browser import browser, log_in, screenshot, scrolls_sideways  # noqa: F401
from tests.console.conftest import ledger

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_operator_reads_a_statement_with_overage_and_submits_a_task(live_server, browser,  # noqa: F811
                                                                        tenant_lakers):
    from tasks.models import TaskRun
    from tenants.models import Plan, PlanChange, Tenant

    starter, professional = Plan.objects.get(code="STARTER"), Plan.objects.get(code="PROFESSIONAL")
    Plan.objects.filter(pk=starter.pk).update(monthly_price_cents=2900, api_calls_per_day=1000)
    Plan.objects.filter(pk=professional.pk).update(monthly_price_cents=9900, api_calls_per_day=10_000,
                                                   overage_price_cents_per_1000=50)
    Tenant.objects.filter(pk=tenant_lakers.pk).update(plan=professional,
                                                      created_at=dt.datetime(2026, 10, 1, tzinfo=dt.UTC))
    change = PlanChange.objects.create(tenant=tenant_lakers, from_plan=starter, to_plan=professional)
    PlanChange.objects.filter(pk=change.pk).update(changed_at=dt.datetime(2026, 11, 21, 9, tzinfo=dt.UTC))
    ledger(tenant_lakers, dt.date(2026, 11, 25), api_calls=12_500, mcp_calls=500)
    ledger(tenant_lakers, dt.date(2026, 11, 26), api_calls=10_030, mcp_calls=30)
    make_user("public", username="operator", superuser=True)
    log_in(browser, live_server.url, "operator")

    browser.get(f"{live_server.url}/admin/tenants/tenant/{tenant_lakers.pk}/statement/?month=2026-11")
    assert browser.find_element(By.ID, "statement-total").text == "$53.60"
    assert browser.find_element(By.ID, "statement-overage").text == "$1.27"
    assert (browser.find_element(By.ID, "calls-rest").text, browser.find_element(By.ID, "calls-mcp").text) == (
        "22000", "530")
    assert not scrolls_sideways(browser)
    screenshot(browser, "statement_overage")

    browser.get(f"{live_server.url}/admin/tasks/taskrun/submit/")
    form = browser.find_element(By.ID, "task-submit-form")
    Select(form.find_element(By.NAME, "name")).select_by_value("system.sleep")
    Select(form.find_element(By.NAME, "tenant")).select_by_value("lakers")
    arguments = form.find_element(By.NAME, "args")
    arguments.clear()
    arguments.send_keys('{"seconds": 5000}')
    form.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    errors = WebDriverWait(browser, 30).until(expected_conditions.presence_of_element_located(
        (By.CSS_SELECTOR, "#task-submit-form .errorlist")))
    assert "5000 is greater than the maximum of 3600" in errors.text
    screenshot(browser, "task_submit")
    assert not TaskRun.objects.exists()
    arguments = browser.find_element(By.NAME, "args")
    arguments.clear()
    arguments.send_keys('{"seconds": 0.1, "steps": 1}')
    browser.find_element(By.CSS_SELECTOR, "#task-submit-form input[type=submit]").click()
    # The submit navigates: a body read while the next page replaces it is stale, not a failure (seen at load 7).
    WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: "Task run system.sleep" in b.find_element(By.TAG_NAME, "body").text)
    assert TaskRun.objects.get().tenant_id == tenant_lakers.pk
