"""A tenant admin in Chromium at 1,400 px: LeBron James's page shows what the API answers; lists fit; one palette.

Screenshots under var/screenshots/: tenant_index, player_page, team_page, standings, and the league lists.
"""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tenants.models import Tenant
from tests.conftest import make_user, tenant_host
from tests.console.browser import browser, log_in, screenshot, scrolls_sideways  # noqa: F401 - browser is a fixture
from tests.league.pages_data import SEASON, seed_season
from tests.tenants_admin.conftest import ledger, put_on_plan, utc_today

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LAKERS_PURPLE = "#552583"


def _base(live_server, schema_name: str) -> str:
    return f"http://{tenant_host(schema_name)}:{live_server.url.rsplit(':', 1)[1]}"  # *.localhost is this machine


def _api_json(driver, path: str) -> dict:
    """The tenant API read by the page's own session, over real HTTP."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {headers: {Accept: 'application/json'}}).then(r => r.json()).then(done);", path)


def test_a_tenant_admin_sees_on_lebrons_page_the_averages_the_api_returns(live_server, browser,  # noqa: F811
                                                                         tenant_lakers):
    put_on_plan(tenant_lakers, "STARTER")
    Tenant.objects.filter(pk=tenant_lakers.pk).update(primary_color=LAKERS_PURPLE)
    ledger(tenant_lakers, utc_today(), api_calls=57)
    ids = seed_season("lakers")
    make_user("lakers", username="coach", superuser=True)
    base = _base(live_server, "lakers")
    log_in(browser, base, "coach")

    # The home page: the plan and today's calls, the 30-day chart.
    usage = browser.find_element(By.ID, "tenant-usage")
    assert usage.find_element(By.CSS_SELECTOR, '[data-figure="calls_today"]').text == "57"
    assert usage.find_elements(By.CSS_SELECTOR, "#card-chart svg.courtside-chart rect.bar")
    assert not scrolls_sideways(browser)
    screenshot(browser, "tenant_index")

    browser.get(f"{base}/admin/league/player/{ids['star']}/change/?season={SEASON}")
    api = _api_json(browser, f"/api/v1/players/{ids['star']}/averages/?season={SEASON}")
    row = api["seasons"][0]
    facts = browser.find_element(By.ID, "season-facts")
    shown = {stat: facts.find_element(By.CSS_SELECTOR, f'[data-stat="{stat}"]').text
             for stat in ("ppg", "rpg", "apg", "games")}
    assert api["player"] == "LeBron James" in browser.find_element(By.TAG_NAME, "h1").text
    assert shown == {"ppg": f"{row['ppg']:.1f}", "rpg": f"{row['rpg']:.1f}", "apg": f"{row['apg']:.1f}",
                     "games": str(row["games"])}
    table = browser.find_element(By.CSS_SELECTOR, f'#season-averages tr[data-season="{SEASON}"]')
    assert table.find_element(By.CSS_SELECTOR, '[data-stat="ppg"]').text == f"{row['ppg']:.1f}"
    assert len(browser.find_elements(By.CSS_SELECTOR, "#game-log tbody tr")) == 10
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.courtside-chart rect.bar")) == 12
    assert not browser.find_elements(By.NAME, "_save")  # a page to read, not an edit form
    assert not scrolls_sideways(browser)
    # One palette: section headers wear the brand's colour, like the header (never Django's default blue).
    header = browser.find_element(By.ID, "header").value_of_css_property("background-color")
    captions = {c.value_of_css_property("background-color")
                for c in browser.find_elements(By.CSS_SELECTOR, ".module caption, .module h2")}
    assert header == "rgba(85, 37, 131, 1)" and captions == {header}
    screenshot(browser, "player_page")

    pages = {
        "team_page": f"/admin/league/team/{ids['teams']['LAL']}/change/?season={SEASON}",
        "standings": f"/admin/league/game/standings/?season={SEASON}",
        "player_list": "/admin/league/player/",
        "game_list": "/admin/league/game/",
        "stat_line_list": "/admin/league/playergamestat/",
    }
    for name, path in pages.items():
        browser.get(f"{base}{path}")
        assert "LeBron James" in browser.page_source or name in ("standings", "game_list"), name
        assert not scrolls_sideways(browser), f"{name} scrolls sideways at 1,400 px"
        screenshot(browser, name)


def test_a_tenant_admin_of_one_tenant_cannot_open_anothers_player_pages_or_usage(live_server, browser,  # noqa: F811
                                                                                tenant_lakers, tenant_warriors):
    ledger(tenant_lakers, utc_today(), api_calls=4321)
    ids = seed_season("lakers")
    make_user("warriors", username="coach", superuser=True)
    warriors = _base(live_server, "warriors")
    log_in(browser, warriors, "coach")

    assert "4321" not in browser.find_element(By.ID, "tenant-usage").text
    browser.get(f"{warriors}/admin/league/player/{ids['star']}/change/")
    assert "LeBron James" not in browser.page_source
    # The Warriors' session is not a session on the Lakers' host: its admin asks for a log-in.
    browser.get(f"{_base(live_server, 'lakers')}/admin/league/player/{ids['star']}/change/")
    assert "/admin/login/" in browser.current_url and "LeBron James" not in browser.page_source
