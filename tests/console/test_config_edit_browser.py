"""In Chromium at 1,400 px: the operator edits a configuration entry, is refused an invalid value with a form
error naming the rule (the old value stays live), then saves a valid one, recorded in the history.
Screenshots: config_invalid.png, config_saved.png."""

from __future__ import annotations

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from configuration.conf import config
from configuration.models import ConfigChange, ConfigEntry
from tests.conftest import make_user
from tests.console.browser import browser, log_in, screenshot, scrolls_sideways  # noqa: F401 - browser is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _submit_value(driver, value: str) -> None:
    field = driver.find_element(By.NAME, "value")
    field.clear()
    field.send_keys(value)
    driver.find_element(By.CSS_SELECTOR, "input[name=_save]").click()


def test_the_operator_is_refused_an_invalid_value_then_saves_a_valid_one(live_server, browser):  # noqa: F811
    config.set("api.page_size", 25)
    entry = ConfigEntry.objects.get(key="api.page_size", tenant=None)
    make_user("public", username="operator", superuser=True)
    log_in(browser, live_server.url, "operator")
    browser.get(f"{live_server.url}/admin/configuration/configentry/{entry.pk}/change/")
    wait = WebDriverWait(browser, 15, ignored_exceptions=(StaleElementReferenceException,))

    _submit_value(browser, "9999")
    errors = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".errorlist"))
    assert "api.page_size: 9999 is greater than the maximum of 500 (rule: maximum)" in " ".join(e.text for e in errors)
    assert not scrolls_sideways(browser)
    screenshot(browser, "config_invalid")
    config.reload()
    assert config.get("api.page_size") == 25  # refused: the old value stays live
    assert ConfigChange.objects.filter(key="api.page_size").count() == 1

    _submit_value(browser, "50")
    wait.until(lambda b: "/change/" not in b.current_url)
    assert "api.page_size" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    config.reload()
    assert config.get("api.page_size") == 50
    change = ConfigChange.objects.filter(key="api.page_size").latest("pk")
    assert (change.source, change.changed_by, change.old_value, change.new_value) == ("admin", "operator", 25, 50)
    screenshot(browser, "config_saved")
