"""The task admin in a real browser (Debian's Chromium and ChromeDriver): progress moves while you watch.

`make test` and .ci/run install the two Debian packages (chromium,
chromium-driver) when they are missing; nothing is downloaded by Selenium.
"""

from __future__ import annotations

import time

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tasks import actions
from tasks.models import Status, TaskRun
from tests.conftest import make_user, tenant_host
from tests.console.browser import browser, log_in  # noqa: F401 - browser is a fixture
from tests.tasks.conftest import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]

def test_a_tenant_admin_watches_its_run_progress_without_reloading_and_never_sees_another_tenants(
        cluster_factory, live_server, browser, tenant_lakers, tenant_warriors):  # noqa: F811 - the fixture
    cluster_factory(broker="orm", workers=2).start()
    make_user("lakers", username="coach", superuser=True)
    warriors_run = actions.task_submit(name="system.sleep", arguments={"seconds": 1, "steps": 1},
                                        tenant=tenant_warriors)
    run = actions.task_submit(name="system.sleep", arguments={"seconds": 9, "steps": 18}, tenant=tenant_lakers)

    port = live_server.url.rsplit(":", 1)[1]
    base = f"http://{tenant_host('lakers')}:{port}"  # Chromium resolves *.localhost to this machine
    log_in(browser, base, "coach")
    browser.get(f"{base}/admin/tasks/taskrun/")
    bar = f'progress.task-progress[data-run="{run.pk}"]'
    WebDriverWait(browser, 15).until(lambda b: b.find_elements(By.CSS_SELECTOR, bar))
    assert not browser.find_elements(By.CSS_SELECTOR, f'progress[data-run="{warriors_run.pk}"]')
    browser.execute_script("window.loadedOnce = true;")  # gone if the page reloads

    seen: list[int] = []
    deadline = time.monotonic() + 40
    read_both = (  # one read of bar and label together: the poller may update them between two reads
        f"return [document.querySelector('{bar}').value, "
        f"document.querySelector('.task-progress-label[data-run=\"{run.pk}\"]').textContent];"
    )
    while time.monotonic() < deadline:
        value, label = browser.execute_script(read_both)
        if not seen or int(value) != seen[-1]:
            seen.append(int(value))
        if "succeeded" in label:
            break
        time.sleep(0.2)
    assert "succeeded" in label and seen[-1] == 100, (seen, label)
    assert any(0 < value < 100 for value in seen), f"no intermediate progress seen: {seen}"
    assert seen == sorted(seen), f"progress went backwards: {seen}"
    assert browser.execute_script("return window.loadedOnce === true;"), "the page reloaded"
    assert TaskRun.objects.get(pk=run.pk).status == Status.SUCCEEDED

    # The poll endpoint itself, from the same browser session: another tenant's run id gives nothing.
    browser.get(f"{base}/admin/tasks/taskrun/progress/?id={warriors_run.pk}&id={run.pk}")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert str(run.pk) in body and str(warriors_run.pk) not in body
    wait_for(lambda: TaskRun.objects.get(pk=warriors_run.pk).status == Status.SUCCEEDED, timeout=30,
             message="the warriors run")
