"""Content-Security-Policy on the admin, the API and the docs (issue 14.11), checked in a real browser.

Chromium (Debian's, through its ChromeDriver) loads each page with a listener for
`securitypolicyviolation` installed before any of the page's scripts run; the
pages must render (Swagger UI draws its operations) with no violation.
"""

from __future__ import annotations

import shutil

import pytest
from django_tenants.utils import schema_context
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tasks import actions as task_actions
from tests.conftest import make_user, tenant_host

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
PASSWORD = "pass-word-123"
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (event) {
  window.__cspViolations.push(event.effectiveDirective + " blocked " + (event.blockedURI || "inline") +
                              " at " + event.sourceFile + ":" + event.lineNumber);
});
"""


def test_every_response_carries_a_policy_without_unsafe_scripts(operator_client, lakers_client):
    for client, path in ((operator_client, "/admin/"), (operator_client, "/api/v1/plans/"),
                         (lakers_client, "/api/v1/teams/"), (lakers_client, "/api/docs/"),
                         (lakers_client, "/admin/")):
        policy = client.get(path)["Content-Security-Policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["default-src"] == "'self'"
        assert "'unsafe-inline'" not in directives["script-src"] and "'unsafe-eval'" not in directives["script-src"]
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.fail("Chromium is missing: apt-get install chromium chromium-driver (make test does it).")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
    yield driver
    driver.quit()


def _violations(browser) -> list[str]:
    recorded = browser.execute_script("return window.__cspViolations || [];")
    console = [entry["message"] for entry in browser.get_log("browser")
               if "Content Security Policy" in entry["message"]]
    return recorded + console


def _log_in(browser, base: str, username: str) -> None:
    browser.get(f"{base}/admin/login/?next=/admin/")
    assert _violations(browser) == []
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    WebDriverWait(browser, 15).until(lambda b: "/admin/login/" not in b.current_url)


def _visit(browser, url: str, *, ready: str) -> list[str]:
    browser.get(url)
    WebDriverWait(browser, 20).until(lambda b: b.find_elements(By.CSS_SELECTOR, ready))
    return _violations(browser)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_admin_and_the_docs_render_in_a_browser_without_csp_violations(live_server, browser, tenant_lakers):
    port = live_server.url.rsplit(":", 1)[1]
    make_user("public", username="operator", superuser=True, password=PASSWORD)
    make_user("lakers", username="coach", superuser=True, password=PASSWORD)
    tenant_lakers.support_email, tenant_lakers.display_name = "help@lakers.example", "Lakers"
    with schema_context("lakers"):
        tenant_lakers.save(update_fields=["support_email", "display_name"])
    task_actions.task_submit(name="system.noop", tenant=tenant_lakers)  # a progress bar and its poller

    pages = {
        "operator": (f"http://localhost:{port}", "operator", [
            ("/admin/", "#content-main"),
            ("/admin/tenants/tenant/", "#result_list"),
            (f"/admin/tenants/tenant/{tenant_lakers.pk}/change/", "#tenant_form"),
            ("/admin/tenants/plan/", "#result_list"),
            ("/admin/tasks/taskrun/", "#result_list"),
            ("/api/docs/", ".swagger-ui .opblock"),
        ]),
        "lakers": (f"http://{tenant_host('lakers')}:{port}", "coach", [
            ("/admin/", "#content-main"),
            ("/admin/branding/", "form"),
            ("/admin/tasks/taskrun/", "progress.task-progress"),
            ("/api/docs/", ".swagger-ui .opblock"),
        ]),
    }
    found = {}
    for base, username, visits in pages.values():
        _log_in(browser, base, username)
        for path, ready in visits:
            violations = _visit(browser, f"{base}{path}", ready=ready)
            if violations:
                found[f"{base}{path}"] = violations
    assert found == {}

    # The listener does see a violation: an inline script without the nonce is refused.
    browser.execute_script("var s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                           "document.body.appendChild(s);")
    WebDriverWait(browser, 5).until(lambda b: b.execute_script("return window.__cspViolations.length"))
    assert browser.execute_script("return window.ran") is None
