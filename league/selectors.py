"""Reads of league data, with aggregates computed by PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Avg, Count, F, FloatField, Q, QuerySet, Sum, Value, Window
from django.db.models.functions import Cast, NullIf
from psycopg import sql

from configuration import keys
from core.db import raw_cursor
from league.models import Game, Player, PlayerGameStat, StatModel, Team

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


# ------------------------------------------------------------- the tenant admin's league pages (and the MCP tools)

GAME_LOG_MAX = 82  # a season's games: the most any caller may ask for


def player_game_log(*, player_id: int, season: str | None = None, limit: int = 10) -> QuerySet[PlayerGameStat]:
    """A player's latest stat lines, newest first, with the game and both teams; at most `limit` (≤ 82)."""
    lines = PlayerGameStat.objects.filter(player_id=player_id)
    if season:
        lines = lines.filter(game__season=season)
    limit = max(1, min(int(limit), GAME_LOG_MAX))
    return lines.select_related("game__home_team", "game__away_team", "team").order_by(
        "-game__date", "-game_id")[:limit]


def player_points_trend(*, player_id: int, season: str) -> list[tuple]:
    """(date, points, points per game so far) for each game of a season, oldest first: a window average in SQL."""
    order = [F("game__date").asc(), F("game_id").asc()]
    return list(
        PlayerGameStat.objects.filter(player_id=player_id, game__season=season)
        .annotate(ppg_so_far=Window(Avg("points", output_field=FloatField()), order_by=order))
        .order_by(*order)
        .values_list("game__date", "points", "ppg_so_far")
    )


@dataclass(frozen=True)
class Projection:
    model: StatModel
    recent_average: float
    recent_minutes: float
    projected_points: float


def points_model_latest(*, name: str | None = None) -> StatModel | None:
    """The tenant's trained points model: the one named, or the latest trained; None when there is none."""
    models = StatModel.objects.filter(target="points", status=StatModel.Status.READY)
    return (models.filter(name=name) if name else models.order_by("-trained_at", "-id")).first()


def points_projection(*, player_id: int, model: StatModel) -> Projection | None:
    """Next-game points of a player by a trained points model (league.modelling); None without games."""
    recent = PlayerGameStat.objects.filter(
        pk__in=PlayerGameStat.objects.filter(player_id=player_id).order_by("-game__date", "-game_id")
        .values("pk")[: model.window_games]
    ).aggregate(points=Avg("points", output_field=FloatField()), minutes=Avg("minutes", output_field=FloatField()))
    if recent["points"] is None:
        return None
    metrics = model.metrics
    projected = metrics["intercept"] + metrics["recent_average"] * recent["points"] + metrics["minutes"] * recent[
        "minutes"]
    return Projection(model=model, recent_average=recent["points"], recent_minutes=recent["minutes"],
                      projected_points=round(max(0.0, projected), 2))


def team_roster(*, team_id: int, season: str) -> QuerySet[Player]:
    """A team's players with games, ppg, rpg and apg of a season (None without games), best scorers first."""
    in_season = Q(stat_lines__game__season=season)
    return (
        Player.objects.filter(team_id=team_id)
        .annotate(
            games=Count("stat_lines", filter=in_season),
            ppg=Avg("stat_lines__points", filter=in_season, output_field=FloatField()),
            rpg=Avg(F("stat_lines__offensive_rebounds") + F("stat_lines__defensive_rebounds"), filter=in_season,
                    output_field=FloatField()),
            apg=Avg("stat_lines__assists", filter=in_season, output_field=FloatField()),
        )
        .order_by(F("ppg").desc(nulls_last=True), "last_name", "first_name")
    )


_STANDINGS = """
WITH results AS (
    SELECT home_team_id AS team_id, home_score > away_score AS won, home_score < away_score AS lost
      FROM league_game WHERE season = %(season)s AND home_score IS NOT NULL AND away_score IS NOT NULL
    UNION ALL
    SELECT away_team_id, away_score > home_score, away_score < home_score
      FROM league_game WHERE season = %(season)s AND home_score IS NOT NULL AND away_score IS NOT NULL
)
SELECT t.id, t.abbreviation, t.full_name, t.city, t.nickname,
       count(*) FILTER (WHERE r.won) AS wins,
       count(*) FILTER (WHERE r.lost) AS losses,
       round(count(*) FILTER (WHERE r.won)::numeric / NULLIF(count(r.team_id), 0), 3)::float AS win_pct
  FROM league_team t LEFT JOIN results r ON r.team_id = t.id
 WHERE %(team_id)s::integer IS NULL OR t.id = %(team_id)s::integer
 GROUP BY t.id
 ORDER BY win_pct DESC NULLS LAST, wins DESC, t.full_name
"""
STANDINGS_COLUMNS = ("id", "abbreviation", "full_name", "city", "nickname", "wins", "losses", "win_pct")


def standings(*, season: str, team_id: int | None = None) -> list[dict]:
    """Wins, losses and win % of every team (or one) in a season's finished games: one aggregate statement.

    Unqualified table names: the connection's search_path is the tenant's schema.
    """
    with connection.cursor() as cursor:
        cursor.execute(_STANDINGS, {"season": season, "team_id": team_id})
        return [dict(zip(STANDINGS_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
