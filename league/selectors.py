"""Reads of league data, with aggregates computed by PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Avg, Count, F, FloatField, QuerySet, Sum, Value
from django.db.models.functions import Cast, NullIf
from psycopg import sql

from configuration import keys
from core.db import raw_cursor
from league.models import Game, Player, PlayerGameStat, Team

# The per-game statistics a player score may weight, as expressions over a stat line.
SCORED_EXPRESSIONS = {
    "points": F("points"),
    "rebounds": F("offensive_rebounds") + F("defensive_rebounds"),
    "assists": F("assists"),
    "steals": F("steals"),
    "blocks": F("blocks"),
    "turnovers": F("turnovers"),
}
assert set(SCORED_EXPRESSIONS) == set(keys.SCORED_STATISTICS)
PER_MINUTES = 36


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


@dataclass(frozen=True)
class Scoring:
    """How the player score is computed: the model in force and the weight of each per-game statistic."""

    model: str
    weights: dict

    def as_dict(self) -> dict:
        return {"model": self.model, "weights": dict(self.weights)}


def scoring_current() -> Scoring:
    """The current view's scoring (scoring.model behind flags.new_scoring, scoring.weights)."""
    return Scoring(model=keys.scoring_model(), weights=keys.scoring_weights())


def _score(scoring: Scoring):
    """classic: the weighted sum of per-game averages; new: the same weights per 36 minutes played.

    Turnovers are weighted negatively. Statistics without a weight count nothing.
    """
    score = Value(0.0, output_field=FloatField())
    minutes = NullIf(Cast(Sum("minutes"), FloatField()), 0.0)
    for name, weight in scoring.weights.items():
        signed = Value(-weight if name in keys.PENALISED_STATISTICS else weight, output_field=FloatField())
        if scoring.model == "new":
            term = Cast(Sum(SCORED_EXPRESSIONS[name]), FloatField()) * Value(float(PER_MINUTES)) / minutes
        else:
            term = Avg(SCORED_EXPRESSIONS[name], output_field=FloatField())
        score = score + signed * term
    return score


def player_season_averages(*, player_id: int, season: str | None = None, scoring: Scoring | None = None) -> QuerySet:
    """Per-season averages of one player (ppg, rpg, apg, spg, bpg, tpg, fg%) and its score, one row per season.

    `season` None means every season.
    """
    scoring = scoring or scoring_current()
    lines = PlayerGameStat.objects.filter(player_id=player_id)
    if season:
        lines = lines.filter(game__season=season)
    return (
        lines.values(season=F("game__season"))
        .annotate(
            games=Count("id"),
            ppg=Avg("points", output_field=FloatField()),
            rpg=Avg(SCORED_EXPRESSIONS["rebounds"], output_field=FloatField()),
            apg=Avg("assists", output_field=FloatField()),
            spg=Avg("steals", output_field=FloatField()),
            bpg=Avg("blocks", output_field=FloatField()),
            tpg=Avg("turnovers", output_field=FloatField()),
            fg_pct=Cast(Sum("field_goals_made"), FloatField())
            / NullIf(Cast(Sum("field_goals_attempted"), FloatField()), 0.0),
            score=_score(scoring),
        )
        .order_by("season")
    )


def data_generation() -> str:
    """The current schema's league data generation (league.0004): it changes with every write the reader can see.

    A digest of the per-backend rows the league tables' trigger writes; "0" before any write.
    """
    statement = sql.SQL(
        "SELECT md5(string_agg(backend || ':' || transaction_id || ':' || statement, ',' ORDER BY backend))"
        " FROM {}.league_datageneration"
    ).format(sql.Identifier(connection.schema_name))
    with raw_cursor() as cursor:
        cursor.execute(statement)
        (digest,) = cursor.fetchone()
    return digest or "0"
