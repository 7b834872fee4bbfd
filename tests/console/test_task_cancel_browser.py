"""In Chromium at 1,400 px, against a real cluster: the operator cancels a running task from its page and
watches its state go from running to cancellation requested to cancelled (screenshot task_run_cancelled.png)."""

from __future__ import annotations

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tasks import actions
from tasks.models import Status, TaskRun
from tests.conftest import make_user
from tests.console.browser import browser, log_in, screenshot, scrolls_sideways  # noqa: F401 - browser is a fixture
from tests.tasks.conftest import cluster_factory, wait_for  # noqa: F401 - cluster_factory is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def _status(driver) -> str:
    return driver.find_element(By.ID, "task-status").text


def test_the_operator_cancels_a_running_task_from_its_page_and_sees_it_stop(
        cluster_factory, live_server, browser, tenant_lakers):  # noqa: F811 - the fixtures
    cluster_factory(broker="orm", workers=1).start()
    run = actions.task_submit(name="system.sleep", arguments={"seconds": 60, "steps": 120}, tenant=tenant_lakers,
                              by_operator=True)
    wait_for(lambda: TaskRun.objects.get(pk=run.pk).status == Status.RUNNING, timeout=30,
             message="the run to start on the cluster")
    make_user("public", username="operator", superuser=True)
    log_in(browser, live_server.url, "operator")
    page = f"{live_server.url}/admin/tasks/taskrun/{run.pk}/change/"
    browser.get(page)
    assert _status(browser).startswith("Running"), _status(browser)
    assert not browser.find_elements(By.ID, "task-retry")  # only what a running run allows

    browser.find_element(By.ID, "task-cancel").click()
    WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda b: b.current_url == page and "cancel" in _status(b).lower())

    def cancelled(driver) -> bool:  # the worker stops at its next progress report (every 0.5 s)
        driver.refresh()
        return _status(driver).startswith("Cancelled")

    WebDriverWait(browser, 20, poll_frequency=0.5).until(cancelled)
    finished = TaskRun.objects.get(pk=run.pk)
    assert finished.status == Status.CANCELLED and finished.progress < 1
    assert not browser.find_elements(By.ID, "task-cancel") and browser.find_elements(By.ID, "task-retry")
    assert not scrolls_sideways(browser)
    screenshot(browser, "task_run_cancelled")
