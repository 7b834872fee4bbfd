"""Reads of league data, with aggregates computed by PostgreSQL."""

from django.db.models import Avg, Count, F, FloatField, QuerySet, Sum
from django.db.models.functions import Cast, NullIf

from league.models import Game, Player, PlayerGameStat, Team


def team_list() -> QuerySet[Team]:
    return Team.objects.all()


def player_list(*, team_id: int | None = None, search: str | None = None) -> QuerySet[Player]:
    players = Player.objects.select_related("team")
    if team_id is not None:
        players = players.filter(team_id=team_id)
    if search:
        players = players.filter(full_name__icontains=search)
    return players


def game_list(*, season: str | None = None, team_id: int | None = None) -> QuerySet[Game]:
    games = Game.objects.select_related("home_team", "away_team")
    if season:
        games = games.filter(season=season)
    if team_id is not None:
        games = games.filter(home_team_id=team_id) | games.filter(away_team_id=team_id)
    return games


def player_season_averages(*, player_id: int, season: str | None = None) -> QuerySet:
    """Per-season averages of one player: ppg, rpg, apg and fg%, one row per season."""
    lines = PlayerGameStat.objects.filter(player_id=player_id)
    if season:
        lines = lines.filter(game__season=season)
    return (
        lines.values(season=F("game__season"))
        .annotate(
            games=Count("id"),
            ppg=Avg("points", output_field=FloatField()),
            rpg=Avg(F("offensive_rebounds") + F("defensive_rebounds"), output_field=FloatField()),
            apg=Avg("assists", output_field=FloatField()),
            fg_pct=Cast(Sum("field_goals_made"), FloatField())
            / NullIf(Cast(Sum("field_goals_attempted"), FloatField()), 0.0),
        )
        .order_by("season")
    )
