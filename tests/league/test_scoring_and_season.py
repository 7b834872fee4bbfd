"""The averages endpoint: its default season (reports.default_season) and its player score (scoring.*)."""

from __future__ import annotations

import datetime as dt

import pytest
from django_tenants.utils import schema_context

from tests.foundation import factories


def _two_seasons(schema_name: str):
    """One player, two games in 2025-26 and one in 2024-25, with every weighted statistic."""
    with schema_context(schema_name):
        home, away = factories.team("HOM"), factories.team("AWY")
        star = factories.player("Star Player", home)
        g1 = factories.game(home, away, date=dt.date(2025, 10, 21))
        g2 = factories.game(away, home, date=dt.date(2025, 10, 23))
        old = factories.game(home, away, date=dt.date(2024, 11, 1), season="2024-25")
        # 2025-26 per game: 25 points, 7 rebounds, 6 assists, 1.5 steals, 1 block, 3 turnovers, 30 minutes.
        factories.stat_line(g1, star, fgm=10, fga=18, ftm=10, fta=10, offensive_rebounds=2,
                            defensive_rebounds=6, assists=8, steals=2, blocks=1, turnovers=4, minutes=32)
        factories.stat_line(g2, star, fgm=10, fga=20, ftm=0, fta=0, offensive_rebounds=1,
                            defensive_rebounds=5, assists=4, steals=1, blocks=1, turnovers=2, minutes=28)
        factories.stat_line(old, star, fgm=5, fga=10, assists=2, minutes=20)
    return star


def _season(client, player, query: str = "") -> dict:
    body = client.get(f"/api/v1/players/{player.pk}/averages/{query}").json()
    return body


def test_without_a_season_the_endpoint_answers_for_reports_default_season_per_tenant(
    lakers_client, warriors_client
):
    lakers_star, warriors_star = _two_seasons("lakers"), _two_seasons("warriors")

    assert [s["season"] for s in _season(lakers_client, lakers_star)["seasons"]] == ["2025-26"]
    response = lakers_client.post("/api/v1/config/overrides/", {"key": "reports.default_season", "value": "2024-25"},
                                  content_type="application/json")
    assert response.status_code == 200

    assert [s["season"] for s in _season(lakers_client, lakers_star)["seasons"]] == ["2024-25"]
    assert [s["season"] for s in _season(warriors_client, warriors_star)["seasons"]] == ["2025-26"]
    assert [s["season"] for s in _season(lakers_client, lakers_star, "?season=2025-26")["seasons"]] == ["2025-26"]
    assert [s["season"] for s in _season(lakers_client, lakers_star, "?season=all")["seasons"]] == [
        "2024-25", "2025-26"]
    refused = lakers_client.get(f"/api/v1/players/{lakers_star.pk}/averages/?season=someday")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid"


def test_the_player_score_weights_the_per_game_figures_by_the_tenants_scoring_weights(
    lakers_client, warriors_client
):
    lakers_star, warriors_star = _two_seasons("lakers"), _two_seasons("warriors")

    body = _season(lakers_client, lakers_star)
    [row] = body["seasons"]
    # Defaults: points 1.0, rebounds 1.2, assists 1.5; no weight for steals, blocks, turnovers.
    assert body["scoring"] == {"model": "classic", "weights": {"points": 1.0, "rebounds": 1.2, "assists": 1.5}}
    assert (row["ppg"], row["rpg"], row["apg"], row["spg"], row["bpg"], row["tpg"]) == (25, 7, 6, 1.5, 1, 3)
    assert row["score"] == pytest.approx(25 * 1.0 + 7 * 1.2 + 6 * 1.5)

    for key, value in (("scoring.weights.points", 2.0), ("scoring.weights.steals", 3.0),
                       ("scoring.weights.turnovers", 1.0)):
        response = lakers_client.post("/api/v1/config/overrides/", {"key": key, "value": value},
                                      content_type="application/json")
        assert response.status_code == 200, response.content

    [row] = _season(lakers_client, lakers_star)["seasons"]
    assert row["score"] == pytest.approx(25 * 2.0 + 7 * 1.2 + 6 * 1.5 + 1.5 * 3.0 - 3 * 1.0)  # turnovers cost
    [other] = _season(warriors_client, warriors_star)["seasons"]
    assert other["score"] == pytest.approx(25 * 1.0 + 7 * 1.2 + 6 * 1.5)


def test_a_weight_for_a_statistic_that_does_not_exist_is_refused(lakers_client):
    response = lakers_client.post("/api/v1/config/overrides/", {"key": "scoring.weights.dunks", "value": 2.0},
                                  content_type="application/json")
    assert response.status_code == 400
    assert "scoring.weights" in response.json()["error"]["message"]


def test_the_new_model_scores_per_36_minutes_where_the_new_scoring_flag_is_on(
    lakers_client, warriors_client, operator_client
):
    lakers_star, warriors_star = _two_seasons("lakers"), _two_seasons("warriors")
    for client in (lakers_client, warriors_client):
        response = client.post("/api/v1/config/overrides/", {"key": "scoring.model", "value": "new"},
                               content_type="application/json")
        assert response.status_code == 200

    # The flag is off by default: the tenant asked for the new model but gets the classic one, and is told so.
    body = _season(lakers_client, lakers_star)
    assert body["scoring"]["model"] == "classic"

    response = operator_client.post("/api/v1/config/entries/",
                                    {"key": "flags.new_scoring", "value": {"enabled": True, "tenants": ["lakers"]}},
                                    content_type="application/json")
    assert response.status_code in (200, 201)

    body = _season(lakers_client, lakers_star)
    [row] = body["seasons"]
    assert body["scoring"]["model"] == "new"
    # 60 minutes over two games: 50 points, 14 rebounds, 12 assists, per 36 minutes.
    assert row["score"] == pytest.approx((50 * 1.0 + 14 * 1.2 + 12 * 1.5) * 36 / 60)
    warriors_body = _season(warriors_client, warriors_star)
    assert warriors_body["scoring"]["model"] == "classic"
    assert warriors_body["seasons"][0]["score"] == pytest.approx(25 * 1.0 + 7 * 1.2 + 6 * 1.5)
