"""What each MCP tool answers: plain reads of the current schema's league data, as JSON-ready dicts.

Each function runs in a worker thread already set to the caller's tenant schema (nba_mcp.tenancy)
and reads through the league's selectors where one exists, so a tool answers what the REST API
answers for the same data. `limit` is already capped at the tenant's mcp.max_results.
"""

from __future__ import annotations

from django.db.models import Q

from configuration import keys
from core.errors import DomainError
from league import selectors
from league.models import Game, Player, PlayerGameStat, Team


def _not_found(what: str, **detail) -> DomainError:
    return DomainError(f"No {what} with {', '.join(f'{k} {v!r}' for k, v in detail.items())} in your data.",
                       code="not_found", status=404, detail=detail)


def _season(season: str | None) -> str:
    return season or keys.reports_default_season()


def _team(team: str) -> Team:
    found = Team.objects.filter(Q(abbreviation__iexact=team) | Q(full_name__iexact=team)
                                | Q(nickname__iexact=team)).first()
    if found is None and team.isdigit():
        found = Team.objects.filter(pk=int(team)).first()
    if found is None:
        raise _not_found("team", team=team)
    return found


def _player(player_id: int) -> Player:
    found = Player.objects.select_related("team").filter(pk=player_id).first()
    if found is None:
        raise _not_found("player", id=player_id)
    return found


def _player_row(player: Player) -> dict:
    return {"id": player.pk, "nba_id": player.nba_id, "full_name": player.full_name,
            "team": player.team.abbreviation if player.team_id else None, "is_active": player.is_active}


def _team_row(team: Team) -> dict:
    return {"id": team.pk, "abbreviation": team.abbreviation, "full_name": team.full_name,
            "city": team.city, "nickname": team.nickname}


def _rows(queryset, limit: int) -> tuple[list, bool]:
    rows = list(queryset[: limit + 1])
    return rows[:limit], len(rows) > limit


def search_players(*, query: str, team: str | None, active_only: bool, limit: int) -> dict:
    players = selectors.player_list(team_id=_team(team).pk if team else None, search=query.strip())
    if active_only:
        players = players.filter(is_active=True)
    rows, truncated = _rows(players, limit)
    return {"players": [_player_row(p) for p in rows], "count": len(rows), "truncated": truncated}


def _averages(player: Player, season: str | None) -> dict:
    season = _season(season)
    scoring = selectors.scoring_current()
    rows = selectors.player_season_averages(player_id=player.pk, season=None if season == "all" else season,
                                            scoring=scoring)
    return {"player": _player_row(player), "scoring": scoring.as_dict(),
            "seasons": [{key: row[key] for key in ("season", "games", "ppg", "rpg", "apg", "spg", "bpg", "tpg",
                                                   "fg_pct", "score")} for row in rows]}


def player_averages(*, player_id: int, season: str | None) -> dict:
    return _averages(_player(player_id), season)


def player_game_log(*, player_id: int, season: str | None, limit: int) -> dict:
    player = _player(player_id)
    season = _season(season)
    lines = (PlayerGameStat.objects.filter(player=player, game__season=season)
             .select_related("game__home_team", "game__away_team", "team").order_by("-game__date", "-game_id"))
    rows, truncated = _rows(lines, limit)
    games = []
    for line in rows:
        game = line.game
        opponent = game.away_team if game.home_team_id == line.team_id else game.home_team
        games.append({"game_id": game.pk, "date": game.date.isoformat(), "opponent": opponent.abbreviation,
                      "home": game.home_team_id == line.team_id, "minutes": float(line.minutes),
                      "points": line.points, "rebounds": line.rebounds, "assists": line.assists,
                      "steals": line.steals, "blocks": line.blocks, "turnovers": line.turnovers})
    return {"player": _player_row(player), "season": season, "games": games, "count": len(games),
            "truncated": truncated}


def compare_players(*, player_a: int, player_b: int, season: str | None) -> dict:
    return {"season": _season(season), "players": [_averages(_player(player_a), season),
                                                   _averages(_player(player_b), season)]}


def team_roster(*, team: str, season: str | None, limit: int) -> dict:
    found = _team(team)
    season = _season(season)
    rows, truncated = _rows(selectors.team_roster(team_id=found.pk, season=season), limit)
    return {"team": _team_row(found), "season": season, "truncated": truncated,
            "players": [{**_player_row(p), "games": p.games, "ppg": p.ppg, "rpg": p.rpg, "apg": p.apg}
                        for p in rows]}


def list_teams() -> dict:
    teams = [_team_row(team) for team in selectors.team_list()]
    return {"teams": teams, "count": len(teams)}


def list_games(*, season: str | None, team: str | None, limit: int) -> dict:
    season = _season(season)
    games = selectors.game_list(season=season, team_id=_team(team).pk if team else None).order_by("-date", "id")
    rows, truncated = _rows(games, limit)
    return {"season": season, "count": len(rows), "truncated": truncated,
            "games": [{"id": g.pk, "date": g.date.isoformat(), "home_team": g.home_team.abbreviation,
                       "away_team": g.away_team.abbreviation, "home_score": g.home_score,
                       "away_score": g.away_score} for g in rows]}


def box_score(*, game_id: int) -> dict:
    game = Game.objects.select_related("home_team", "away_team").filter(pk=game_id).first()
    if game is None:
        raise _not_found("game", id=game_id)
    lines = game.stat_lines.select_related("player", "team").order_by("team_id", "-points")
    teams = {game.home_team_id: [], game.away_team_id: []}
    for line in lines:
        teams.setdefault(line.team_id, []).append({
            "player_id": line.player_id, "player": line.player.full_name, "minutes": float(line.minutes),
            "points": line.points, "rebounds": line.rebounds, "assists": line.assists})
    return {"game": {"id": game.pk, "season": game.season, "date": game.date.isoformat(),
                     "home_team": game.home_team.abbreviation, "away_team": game.away_team.abbreviation,
                     "home_score": game.home_score, "away_score": game.away_score},
            "home": teams[game.home_team_id], "away": teams[game.away_team_id]}


def standings(*, season: str | None) -> dict:
    season = _season(season)
    return {"season": season, "standings": selectors.standings(season=season)}


def project_points(*, player_id: int, model: str | None) -> dict:
    """Next-game points of a player with the tenant's trained points model (league.train_points_model)."""
    player = _player(player_id)
    chosen = selectors.points_model_latest(name=model)
    if chosen is None:
        raise DomainError("No trained points model" + (f" named {model!r}" if model else "") +
                          ": train one first (the league.train_points_model task).",
                          code="no_trained_model", status=404, detail={"model": model})
    projection = selectors.points_projection(player_id=player.pk, model=chosen)
    if projection is None:
        raise DomainError(f"{player.full_name} has no games to project from.", code="no_games", status=404,
                          detail={"player_id": player.pk})
    return {"player": _player_row(player), "model": {"name": chosen.name, "window_games": chosen.window_games,
                                                      "mae": chosen.metrics.get("mae")},
            "recent_average": projection.recent_average, "recent_minutes": projection.recent_minutes,
            "projected_points": projection.projected_points}


def current_season() -> dict:
    season = keys.reports_default_season()
    games = Game.objects.filter(season=season)
    return {"season": season, "games": games.count(),
            "played": games.filter(home_score__isnull=False).count()}
