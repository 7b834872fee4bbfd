"""What the tenant admin's league pages show: presentation of league.selectors' figures, nothing computed here.

Every average, game log, record, standing and projection comes from `league.selectors` (the same
functions the API and the MCP tools answer from); this module only picks the season, labels and charts.
"""

from __future__ import annotations

import re

from configuration import keys
from core import charts
from league import selectors
from league.models import Player, Team

SEASON = re.compile(r"^\d{4}-\d{2}$")
SCHEDULE_MAX = 100  # games listed on a team's page


def season_of(request) -> str:
    """?season=YYYY-YY when it is one, else the tenant's reports.default_season (bad input is ignored)."""
    asked = request.GET.get("season", "")[:7]
    return asked if SEASON.match(asked) else keys.reports_default_season()


def brand_color(request) -> str:
    tenant = getattr(request, "tenant", None)
    return getattr(tenant, "primary_color", None) or charts.DEFAULT_COLOR


def player_page(*, player: Player, season: str, color: str) -> dict:
    averages = list(selectors.player_season_averages(player_id=player.pk))
    trend = selectors.player_points_trend(player_id=player.pk, season=season)
    chart = charts.bar_chart(
        [(day.strftime("%d %b"), ppg) for day, _, ppg in trend],
        title=f"Points per game through each game, {season}", color=color, width=900, height=180,
        format_value=lambda v: f"{v:.1f}",
    ) if trend else None
    model = selectors.points_model_latest()
    projection = selectors.points_projection(player_id=player.pk, model=model) if model else None
    return {
        "player": player,
        "season": season,
        "averages": averages,
        "current": next((row for row in averages if row["season"] == season), None),
        "game_log": [_log_row(line) for line in selectors.player_game_log(player_id=player.pk, limit=10)],
        "trend_chart": chart,
        "points_model": model,
        "projection": projection,
    }


def _from_side(game, team_id: int) -> dict:
    """A game seen from one team: home or away, the opponent, W/L and the score (blank before it is played)."""
    home = game.home_team_id == team_id
    own, other = (game.home_score, game.away_score) if home else (game.away_score, game.home_score)
    result = "" if own is None or other is None else ("W" if own > other else "L" if own < other else "T")
    return {"game": game, "home": home, "opponent": game.away_team if home else game.home_team, "result": result,
            "score": f"{own}–{other}" if result else ""}


def _log_row(line) -> dict:
    return {"line": line, **_from_side(line.game, line.team_id)}


def team_page(*, team: Team, season: str) -> dict:
    games = selectors.game_list(season=season, team_id=team.pk).order_by("date", "id")[:SCHEDULE_MAX]
    schedule = [_from_side(game, team.pk) for game in games]
    record = selectors.standings(season=season, team_id=team.pk)
    return {
        "team": team,
        "season": season,
        "roster": list(selectors.team_roster(team_id=team.pk, season=season)),
        "record": record[0] if record else None,
        "schedule": schedule,
    }
