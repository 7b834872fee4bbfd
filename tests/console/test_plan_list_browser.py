"""In Chromium at 1,400 px: the plan list, overage column included, fits without sideways scrolling."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tenants.models import Plan
from tests.conftest import make_user
from tests.console.browser import browser, log_in, screenshot, scrolls_sideways  # noqa: F401 - browser is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_plan_list_with_its_overage_column_fits_1400_px(live_server, browser):  # noqa: F811
    Plan.objects.filter(code="ENTERPRISE").update(overage_price_cents_per_1000=123_456, monthly_price_cents=9_999_900)
    make_user("public", username="operator", superuser=True)
    log_in(browser, live_server.url, "operator")
    browser.get(f"{live_server.url}/admin/tenants/plan/")
    cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#result_list td.field-overage_display")]
    assert "$1,234.56 / 1,000 calls" in cells and "blocks" in cells
    screenshot(browser, "plan_list")
    # Not even the list's own box scrolls: every column, the overage one last, is on screen.
    inner = browser.execute_script("const r = document.querySelector('#changelist-form .results');"
                                   "return [r.scrollWidth, r.clientWidth];")
    assert inner[0] <= inner[1], f"the plan list scrolls inside its box: {inner}"
    last = browser.find_element(By.CSS_SELECTOR, "#result_list th.column-overage_display").rect
    assert last["x"] + last["width"] <= 1400
    assert not scrolls_sideways(browser)
