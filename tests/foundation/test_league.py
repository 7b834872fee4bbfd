"""League data: constraints, season averages, reference data and the demo generator."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django_tenants.utils import schema_context

from league import services
from league.models import Game, Player, PlayerGameStat, Team
from tests.foundation import factories


@pytest.fixture
def lakers_game(tenant_lakers):
    with schema_context("lakers"):
        lal, bos = factories.team("LAL"), factories.team("BOS")
        lebron = factories.player("LeBron James", lal)
        yield factories.game(lal, bos), lebron


def test_season_averages_equal_hand_computed_values(lakers_client):
    with schema_context("lakers"):
        lal, bos = factories.team("LAL"), factories.team("BOS")
        lebron = factories.player("LeBron James", lal)
        g1 = factories.game(lal, bos, date=dt.date(2025, 10, 21))
        g2 = factories.game(bos, lal, date=dt.date(2025, 10, 23))
        g3 = factories.game(lal, bos, date=dt.date(2024, 11, 1), season="2024-25")
        # 2025-26: 30 and 21 points, 10 and 5 rebounds, 8 and 11 assists, 12/20 and 9/20 from the field.
        factories.stat_line(g1, lebron, fgm=12, fga=20, tpm=2, tpa=5, ftm=4, fta=5,
                            offensive_rebounds=2, defensive_rebounds=8, assists=8)
        factories.stat_line(g2, lebron, fgm=9, fga=20, tpm=1, tpa=4, ftm=2, fta=2,
                            offensive_rebounds=1, defensive_rebounds=4, assists=11)
        factories.stat_line(g3, lebron, fgm=10, fga=10, assists=1)

    body = lakers_client.get(f"/api/v1/players/{lebron.pk}/averages/?season=2025-26").json()

    assert body["player"] == "LeBron James"
    [season] = body["seasons"]
    assert season["season"] == "2025-26" and season["games"] == 2
    assert season["ppg"] == pytest.approx((30 + 21) / 2)
    assert season["rpg"] == pytest.approx((10 + 5) / 2)
    assert season["apg"] == pytest.approx((8 + 11) / 2)
    assert season["fg_pct"] == pytest.approx(21 / 40)
    # Without ?season= the endpoint answers for reports.default_season (issue 13.3); ?season=all for every season.
    all_seasons = lakers_client.get(f"/api/v1/players/{lebron.pk}/averages/?season=all").json()["seasons"]
    assert [row["season"] for row in all_seasons] == ["2024-25", "2025-26"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"field_goals_made": 5, "field_goals_attempted": 3, "points": 10}, "Field goals made cannot exceed"),
        ({"free_throws_made": 3, "free_throws_attempted": 2, "points": 3}, "Free throws made cannot exceed"),
        ({"field_goals_made": 1, "field_goals_attempted": 2, "points": 7}, "Points must equal"),
        ({"minutes": 80}, "Minutes must be between 0 and 70"),
    ],
)
def test_constraints_refuse_bad_stat_lines_with_a_clear_message(lakers_game, fields, message):
    game, lebron = lakers_game
    with schema_context("lakers"):
        line = PlayerGameStat(game=game, player=lebron, team=lebron.team, **fields)
        with pytest.raises(ValidationError) as error:
            line.full_clean()
        assert message in str(error.value)
        # The database refuses it too, not only the form.
        with pytest.raises(IntegrityError), transaction.atomic():
            line.save()


def test_negative_points_are_refused_by_the_database(lakers_game):
    game, lebron = lakers_game
    with schema_context("lakers"), pytest.raises(IntegrityError), transaction.atomic():
        PlayerGameStat.objects.create(game=game, player=lebron, team=lebron.team, points=-2)


def test_a_player_cannot_have_two_lines_in_one_game(lakers_game):
    game, lebron = lakers_game
    with schema_context("lakers"):
        factories.stat_line(game, lebron, fgm=1, fga=1)
        with pytest.raises(ValidationError, match="already has a stat line"):
            PlayerGameStat(game=game, player=lebron, team=lebron.team).full_clean()


def test_a_team_cannot_play_itself(tenant_lakers):
    with schema_context("lakers"):
        lal = factories.team("LAL")
        with pytest.raises(ValidationError, match="cannot play itself"):
            Game(home_team=lal, away_team=lal, date=dt.date(2025, 10, 21), season="2025-26").full_clean()


def test_reference_data_loads_the_30_teams_and_the_players_idempotently(tenant_lakers):
    with schema_context("lakers"):
        first = services.reference_load()
        second = services.reference_load()
        assert first == second
        assert Team.objects.count() == 30
        assert Team.objects.filter(abbreviation="LAL", full_name="Los Angeles Lakers").exists()
        assert Player.objects.count() == first["players"] > 4000
        assert Player.objects.filter(full_name="LeBron James").exists()


def test_the_demo_season_is_deterministic_for_a_seed_and_respects_constraints(tenant_lakers):
    with schema_context("lakers"):
        call_command("load_nba_reference", verbosity=0)
        call_command("generate_season", games=40, seed=7, verbosity=0)
        first = list(PlayerGameStat.objects.order_by("game__date", "game__home_team", "player__nba_id")
                     .values_list("player__nba_id", "points", "assists"))
        scores = list(Game.objects.order_by("date", "home_team").values_list("home_score", "away_score"))
        call_command("generate_season", games=40, seed=7, verbosity=0)
        again = list(PlayerGameStat.objects.order_by("game__date", "game__home_team", "player__nba_id")
                     .values_list("player__nba_id", "points", "assists"))
        assert first == again
        assert Game.objects.count() == 40
        assert list(Game.objects.order_by("date", "home_team").values_list("home_score", "away_score")) == scores
        assert all(home != away for home, away in scores)
        assert Player.objects.filter(team__isnull=False).count() == 30 * 15


def test_league_commands_refuse_the_public_schema(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="tenant"):
        call_command("generate_season", games=1, verbosity=0)
