"""MFA in a real browser (Debian's Chromium and ChromeDriver, as tests/tasks/test_browser.py): an operator
superuser enrols, logs out, logs in with a TOTP code computed here from the secret the page shows, then with a
recovery code, which works once."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_tenants.utils import schema_context
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import make_user
from tests.security.conftest import totp_code
from tests.tasks.test_browser import browser, log_in  # noqa: F401 - the Chromium fixture, its password login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def _submit_code(driver, code: str) -> None:
    field = driver.find_element(By.NAME, "otp_token")
    field.clear()
    field.send_keys(code)
    driver.find_element(By.CSS_SELECTOR, "form input[type=submit]").click()


def _log_out(driver) -> None:
    driver.find_element(By.CSS_SELECTOR, "#logout-form button").click()
    WebDriverWait(driver, 15).until(lambda d: "/admin/logout/" in d.current_url)


def test_an_operator_enrols_in_chromium_and_logs_in_with_a_totp_code_then_a_recovery_code_once(
        live_server, browser, public_tenant, settings):  # noqa: F811
    settings.MFA_REQUIRED_FOR_OPERATOR_SUPERUSERS = True
    make_user("public", username="operator", superuser=True)
    base = live_server.url

    # The first login of a superuser who must use MFA leads to enrolment.
    log_in(browser, base, "operator")
    assert browser.current_url.endswith("/admin/security/mfa/enrol/")
    assert browser.find_element(By.CSS_SELECTOR, ".mfa-qr svg").is_displayed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOTS / "mfa-enrolment.png"))
    secret = browser.find_element(By.ID, "mfa-secret").text
    _submit_code(browser, totp_code(secret))
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "recovery-codes"))
    codes = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#recovery-codes li")]
    assert len(codes) == 10
    browser.find_element(By.ID, "recovery-codes-continue").click()
    WebDriverWait(browser, 15).until(lambda d: d.find_elements(By.ID, "logout-form"))

    # Log out; the password now leads to the code, and a code of the app logs in.
    _log_out(browser)
    log_in(browser, base, "operator")
    assert browser.current_url.endswith("/admin/security/mfa/verify/")
    # The step after the one enrolment used (a code cannot be used twice), from the device rather than the clock:
    # an enrolment verified just past a 30 s boundary records a drift of -1 (tests/security/test_mfa.py).
    with schema_context("public"):
        device = TOTPDevice.objects.get(user__username="operator")
    _submit_code(browser, totp_code(secret, at=(device.last_t + 1) * device.step + 1))
    WebDriverWait(browser, 15).until(lambda d: d.current_url.rstrip("/").endswith("/admin"))
    assert "Run the business" in browser.page_source

    # A recovery code logs in once.
    _log_out(browser)
    log_in(browser, base, "operator")
    _submit_code(browser, codes[0])
    WebDriverWait(browser, 15).until(lambda d: d.current_url.rstrip("/").endswith("/admin"))

    # The same recovery code a second time is refused.
    _log_out(browser)
    log_in(browser, base, "operator")
    _submit_code(browser, codes[0])
    WebDriverWait(browser, 15).until(lambda d: "not valid" in d.page_source)
    assert browser.current_url.endswith("/admin/security/mfa/verify/")
    browser.get(f"{base}/admin/")
    assert "/admin/login/" in browser.current_url
