"""Writes of league data: loading the NBA reference lists and generating demo seasons."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from league.models import Game, Player, PlayerGameStat, StatModel, Team

REFERENCE_FILE = Path(__file__).parent / "data" / "nba_reference.json"


def reference_data() -> dict:
    """The 30 teams and ~5,200 players shipped with the nba_api wheel (see the file's `source`)."""
    return json.loads(REFERENCE_FILE.read_text())


@transaction.atomic
def reference_load(*, active_only: bool = False) -> dict:
    """Insert or update teams and players from the shipped reference lists; idempotent."""
    data = reference_data()
    Team.objects.bulk_create(
        [Team(**team) for team in data["teams"]],
        update_conflicts=True,
        unique_fields=["nba_id"],
        update_fields=["abbreviation", "full_name", "nickname", "city", "state", "year_founded"],
    )
    players = [p for p in data["players"] if p["is_active"] or not active_only]
    Player.objects.bulk_create(
        [Player(**player) for player in players],
        update_conflicts=True,
        unique_fields=["nba_id"],
        update_fields=["first_name", "last_name", "full_name", "is_active"],
        batch_size=2000,
    )
    return {"teams": len(data["teams"]), "players": len(players)}


def _stat_line(rng: random.Random, minutes: float) -> dict:
    share = minutes / 36.0
    fga = max(0, int(rng.gauss(13 * share, 3)))
    fgm = sum(rng.random() < 0.47 for _ in range(fga))
    tpa = min(fga, max(0, int(rng.gauss(5 * share, 2))))
    tpm = min(fgm, sum(rng.random() < 0.36 for _ in range(tpa)))
    fta = max(0, int(rng.gauss(4 * share, 2)))
    ftm = sum(rng.random() < 0.78 for _ in range(fta))
    return {
        "minutes": Decimal(f"{minutes:.1f}"),
        "field_goals_attempted": fga,
        "field_goals_made": fgm,
        "three_pointers_attempted": tpa,
        "three_pointers_made": tpm,
        "free_throws_attempted": fta,
        "free_throws_made": ftm,
        "points": 2 * fgm + tpm + ftm,
        "offensive_rebounds": max(0, int(rng.gauss(1.2 * share, 1))),
        "defensive_rebounds": max(0, int(rng.gauss(3.8 * share, 2))),
        "assists": max(0, int(rng.gauss(3.2 * share, 2))),
        "steals": max(0, int(rng.gauss(0.8 * share, 0.8))),
        "blocks": max(0, int(rng.gauss(0.5 * share, 0.7))),
        "turnovers": max(0, int(rng.gauss(1.6 * share, 1.2))),
        "personal_fouls": min(6, max(0, int(rng.gauss(2.2 * share, 1.2)))),
    }


def _minutes_for_rotation(rng: random.Random, size: int) -> list[float]:
    # 240 player-minutes per team per game, weighted to the starters.
    weights = [rng.uniform(0.8, 1.2) * (3.0 if i < 5 else 1.2 if i < 8 else 0.6) for i in range(size)]
    total = sum(weights)
    return [min(48.0, 240.0 * w / total) for w in weights]


@transaction.atomic
def season_generate(
    *,
    season: str = "2025-26",
    games: int = 1230,
    seed: int = 42,
    roster_size: int = 15,
    rotation_size: int = 10,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Assign rosters and generate a season of games and stat lines; deterministic for a seed.

    Replaces any games of the same season, so running it twice gives the same data.
    """
    if games < 1:
        raise ValidationError({"games": "Generate at least one game."})
    if not (1 <= rotation_size <= roster_size):
        raise ValidationError({"rotation_size": "The rotation must fit in the roster."})
    teams = list(Team.objects.order_by("nba_id"))
    if len(teams) < 2:
        raise ValidationError("Load the NBA reference data first (manage.py load_nba_reference).")
    rng = random.Random(seed)

    active = list(Player.objects.filter(is_active=True).order_by("nba_id"))
    rng.shuffle(active)
    Player.objects.filter(team__isnull=False).update(team=None)
    rosters: dict[int, list[Player]] = {team.pk: [] for team in teams}
    for index, player in enumerate(active[: roster_size * len(teams)]):
        team = teams[index % len(teams)]
        player.team = team
        rosters[team.pk].append(player)
    Player.objects.bulk_update(active, ["team"], batch_size=2000)

    Game.objects.filter(season=season).delete()
    start_year = int(season[:4])
    day = dt.date(start_year, 10, 21)
    made_games: list[Game] = []
    while len(made_games) < games:
        order = teams[:]
        rng.shuffle(order)
        per_day = rng.randint(4, len(teams) // 2)
        for home, away in zip(order[0 : 2 * per_day : 2], order[1 : 2 * per_day : 2], strict=True):
            if len(made_games) == games:
                break
            made_games.append(Game(season=season, date=day, home_team=home, away_team=away))
        day += dt.timedelta(days=1)
    Game.objects.bulk_create(made_games, batch_size=2000)

    lines: list[PlayerGameStat] = []
    for number, game in enumerate(made_games, start=1):
        scores = {}
        for team in (game.home_team, game.away_team):
            rotation = rng.sample(rosters[team.pk], min(rotation_size, len(rosters[team.pk])))
            team_points = 0
            for player, minutes in zip(rotation, _minutes_for_rotation(rng, len(rotation)), strict=True):
                values = _stat_line(rng, minutes)
                team_points += values["points"]
                lines.append(PlayerGameStat(game=game, player=player, team=team, **values))
            scores[team.pk] = team_points
        if scores[game.home_team.pk] == scores[game.away_team.pk]:
            scores[game.home_team.pk] += 1  # overtime, settled by the home side's free throw
            lines[-len(rotation) - 1].free_throws_attempted += 1
            lines[-len(rotation) - 1].free_throws_made += 1
            lines[-len(rotation) - 1].points += 1
        game.home_score, game.away_score = scores[game.home_team.pk], scores[game.away_team.pk]
        if progress:
            progress(number)
    Game.objects.bulk_update(made_games, ["home_score", "away_score"], batch_size=2000)
    PlayerGameStat.objects.bulk_create(lines, batch_size=5000)
    return {"games": len(made_games), "stat_lines": len(lines), "players_on_rosters": sum(map(len, rosters.values()))}


def stat_model_create(*, name: str, target: str = "points", window_games: int = 10) -> StatModel:
    """Save a projection model; refused with a ValidationError when the plan's model quota is used up."""
    from django.db import DatabaseError

    from tenants.services import quota_error_from

    model = StatModel(name=(name or "").strip(), target=target, window_games=window_games)
    model.full_clean()
    try:
        with transaction.atomic():
            model.save()
    except DatabaseError as error:
        quota_error = quota_error_from(error)
        if quota_error is None:
            raise
        raise quota_error from error
    return model
