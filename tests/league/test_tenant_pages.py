"""The tenant admin's league pages: a player's read-only page, a team's season, games by team and date, standings."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from configuration import keys
from league import selectors
from league.models import Game, Player, StatModel
from nba_mcp import queries as mcp_queries
from tests.console.html import figures
from tests.league.pages_data import GAMES, LOSSES, SEASON, WINS, seed_season

pytestmark = pytest.mark.django_db


def html(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def section(page: str, element_id: str) -> str:
    start = page.index(f'id="{element_id}"')
    return page[start:page.index("</table>", start)] if "<table" in page[start - 200:start] else page[start:]


def test_a_players_page_shows_the_averages_the_api_returns_and_the_last_ten_games(lakers_client):
    ids = seed_season()
    api = lakers_client.get(f"/api/v1/players/{ids['star']}/averages/?season={SEASON}").json()["seasons"][0]

    page = html(lakers_client.get(f"/admin/league/player/{ids['star']}/change/?season={SEASON}"))

    facts = figures(page[page.index('id="season-facts"'):], "data-stat")
    assert facts["ppg"] == f"{api['ppg']:.1f}" == "21.8"  # 2 × the mean of 131 field goals over 12 games
    assert facts["rpg"] == f"{api['rpg']:.1f}" and facts["apg"] == f"{api['apg']:.1f}"
    assert facts["games"] == str(api["games"]) == "12"
    log = section(page, "game-log")
    assert log.count("<tr>") == 10 + 1  # the header row and the last 10 games
    newest, oldest_shown = GAMES[11], GAMES[2]
    assert f">{2 * newest[0]}<" in log and "2025-11-12" in log and "2025-10-25" in log
    assert "2025-10-23" not in log and "2025-10-21" not in log  # the two oldest are not among the last 10
    assert oldest_shown[0] == 8
    # The trend: one bar per game, the last at the season's average.
    bars = re.findall(r'<rect class="bar"[^>]*data-value="([\d.]+)"', page)
    assert len(bars) == 12 and bars[0] == "20" and bars[-1] == "21.8"
    assert "No trained points model yet" in page


def test_a_players_page_shows_the_projection_of_the_tenants_trained_model(lakers_client):
    ids = seed_season()
    with schema_context("lakers"):
        StatModel.objects.create(name="pts-5", target="points", window_games=5, status=StatModel.Status.READY,
                                 metrics={"intercept": 1.0, "recent_average": 0.9, "minutes": 0.1, "mae": 3.2})
        by_mcp = mcp_queries.project_points(player_id=ids["star"], model=None)["projected_points"]

    page = html(lakers_client.get(f"/admin/league/player/{ids['star']}/change/"))

    # Last 5 games: 14, 26, 20, 32, 12 points in 37..41 minutes: 1 + 0.9 × 20.8 + 0.1 × 39.
    assert figures(page[page.index('id="projection"'):], "data-stat")["projected_points"] == "23.6"
    assert by_mcp == 23.62 and "pts-5" in page


def test_league_data_loaded_by_the_loader_is_read_only_in_the_admin(lakers_client):
    ids = seed_season()
    refused = lakers_client.post(f"/admin/league/player/{ids['star']}/change/", {"full_name": "Someone Else"})
    game_page = html(lakers_client.get(f"/admin/league/game/{ids['games'][0]}/change/"))

    assert refused.status_code == 403
    assert lakers_client.get("/admin/league/player/add/").status_code == 403
    assert lakers_client.post(f"/admin/league/game/{ids['games'][0]}/delete/", {"post": "yes"}).status_code == 403
    assert 'name="_save"' not in game_page and "LeBron James" in game_page  # the box score, without a Save
    with schema_context("lakers"):
        assert Player.objects.get(pk=ids["star"]).full_name == "LeBron James"
        assert Game.objects.count() == 12


def test_a_teams_page_has_its_record_roster_with_averages_and_schedule(lakers_client):
    ids = seed_season()

    page = html(lakers_client.get(f"/admin/league/team/{ids['teams']['LAL']}/change/?season={SEASON}"))

    record = figures(page[page.index('id="team-season"'):], "data-stat")
    assert (record["wins"], record["losses"], record["win_pct"]) == (str(WINS), str(LOSSES), "0.667")
    roster = section(page, "roster")
    assert roster.index("LeBron James") < roster.index("Austin Reaves")  # best scorer first
    assert ">21.8<" in roster and ">8.0<" in roster
    schedule = section(page, "schedule")
    assert schedule.count("result-W") == WINS and schedule.count("result-L") == LOSSES
    assert "W 110–100" in schedule and "L 98–104" in schedule
    assert 'name="_save"' in page  # the team's own facts stay editable


def test_games_filter_by_team_and_by_date(lakers_client):
    ids = seed_season()
    gsw = ids["teams"]["GSW"]

    by_team = html(lakers_client.get(f"/admin/league/game/?team={gsw}"))
    by_date = html(lakers_client.get("/admin/league/game/?date__gte=2025-11-01&date__lt=2025-11-05"))

    gsw_games = sum(1 for _, opponent, _, _ in GAMES if opponent == "GSW")
    assert by_team.count('class="field-date') == gsw_games == 4
    assert by_date.count('class="field-date') == 2  # 2 Nov and 4 Nov


def test_standings_are_one_aggregate_statement_and_the_page_shows_them(lakers_client):
    seed_season()
    page = html(lakers_client.get(f"/admin/league/game/standings/?season={SEASON}"))
    with schema_context("lakers"), CaptureQueriesContext(connection) as statements:
        table = selectors.standings(season=SEASON)

    assert len([s for s in statements if not s["sql"].startswith("SET search_path")]) == 1
    # LAL beat GSW 4 times and split 8 games with BOS (see GAMES).
    assert [(row["abbreviation"], row["wins"], row["losses"], row["win_pct"]) for row in table] == [
        ("LAL", 8, 4, 0.667), ("BOS", 4, 4, 0.5), ("GSW", 0, 4, 0.0)]
    assert page.index('data-team="LAL"') < page.index('data-team="BOS"') < page.index('data-team="GSW"')


def test_a_season_that_is_not_one_falls_back_to_the_default_season(lakers_client, tenant_lakers):
    ids = seed_season()
    default = keys.reports_default_season(tenant=tenant_lakers)
    page = html(lakers_client.get(f"/admin/league/player/{ids['star']}/change/?season=x'%3B--"))
    assert f"Points per game, {default}" in page and "x&#x27;" not in page


def test_one_tenants_admin_cannot_open_anothers_player_pages(lakers_client, warriors_client):
    ids = seed_season("lakers")

    other = warriors_client.get(f"/admin/league/player/{ids['star']}/change/", follow=True)
    lakers_session = lakers_client.cookies
    stray = warriors_client.__class__(warriors_client.host)
    stray.cookies = lakers_session  # the Lakers admin's own session cookie, on the Warriors' host

    assert "LeBron James" not in other.content.decode()
    assert "doesn’t exist" in other.content.decode() or "does not exist" in other.content.decode()
    assert "/admin/login/" in stray.get(f"/admin/league/player/{ids['star']}/change/")["Location"]
    assert "LeBron James" not in html(warriors_client.get("/admin/league/player/"))
