"""Writes of league data: loading the NBA reference lists and generating demo seasons."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import connection, transaction

from league.models import Game, Player, PlayerGameStat, StatModel, Team

REFERENCE_FILE = Path(__file__).parent / "data" / "nba_reference.json"


def reference_files() -> list[Path]:
    """The files the reference data comes from: a pooled schema built from others is stale."""
    return [REFERENCE_FILE]


def reference_data() -> dict:
    """The 30 teams and ~5,200 players shipped with the nba_api wheel (see the file's `source`).

    A player may carry `team_nba_id`, the NBA id of the team it gives him; the
    shipped lists give none (nba_api's static players list has no teams).
    """
    return json.loads(REFERENCE_FILE.read_text())


@transaction.atomic
def reference_load(*, active_only: bool = False) -> dict:
    """Insert or update teams and players from the shipped reference lists; idempotent.

    Every new tenant schema gets this as part of provisioning (a schema seed).
    A player the data gives a team is put on it (and no longer counts as a
    generated roster place); the others keep whatever team they have.
    """
    data = reference_data()
    Team.objects.bulk_create(
        [Team(**team) for team in data["teams"]],
        update_conflicts=True,
        unique_fields=["nba_id"],
        update_fields=["abbreviation", "full_name", "nickname", "city", "state", "year_founded"],
    )
    players = [p for p in data["players"] if p["is_active"] or not active_only]
    team_ids = {team["nba_id"] for team in data["teams"]}
    for player in players:
        if player.get("team_nba_id") is not None and player["team_nba_id"] not in team_ids:
            raise ValidationError(f"The reference data puts {player['full_name']} (NBA id {player['nba_id']}) on "
                                  f"team {player['team_nba_id']}, which is not among its teams.")
    # One set-based statement: every new schema (pooled or made in place) pays this, and the ORM's
    # bulk_create spent about 1 s building 5,198 model instances and their parameters, this about 0.1 s.
    player_table, team_table = Player._meta.db_table, Team._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {player_table} AS player
                (nba_id, first_name, last_name, full_name, is_active, team_id, team_generated)
            SELECT p.nba_id, coalesce(p.first_name, ''), p.last_name, p.full_name, p.is_active, team.id, false
            FROM jsonb_to_recordset(%s::jsonb) AS p(nba_id integer, first_name text, last_name text,
                                                     full_name text, is_active boolean, team_nba_id integer)
            LEFT JOIN {team_table} AS team ON team.nba_id = p.team_nba_id
            ON CONFLICT (nba_id) DO UPDATE SET
                first_name = EXCLUDED.first_name, last_name = EXCLUDED.last_name,
                full_name = EXCLUDED.full_name, is_active = EXCLUDED.is_active,
                team_id = coalesce(EXCLUDED.team_id, player.team_id),
                team_generated = (EXCLUDED.team_id IS NULL AND player.team_generated)
            """,
            [json.dumps(players)],
        )
    with_team = sum(1 for player in players if player.get("team_nba_id") is not None)
    return {"teams": len(data["teams"]), "players": len(players), "players_with_team": with_team}


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

    # Rosters: whoever has a team other than a generated one keeps it (the reference data's, or one set by
    # hand); the places left up to `roster_size` are drawn from the active players without a team and
    # marked as generated, so the data says which teams are made up. A second run re-draws only those.
    Player.objects.filter(team_generated=True).update(team=None, team_generated=False)
    rosters: dict[int, list[Player]] = {team.pk: [] for team in teams}
    for player in Player.objects.filter(team__isnull=False).order_by("nba_id"):
        rosters[player.team_id].append(player)
    kept = sum(map(len, rosters.values()))
    free = list(Player.objects.filter(is_active=True, team__isnull=True).order_by("nba_id"))
    rng.shuffle(free)
    drawn: list[Player] = []
    for index in range(roster_size):
        for team in teams:
            if len(rosters[team.pk]) <= index and free:
                player = free.pop()
                player.team, player.team_generated = team, True
                rosters[team.pk].append(player)
                drawn.append(player)
    Player.objects.bulk_update(drawn, ["team", "team_generated"], batch_size=2000)

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
    return {"games": len(made_games), "stat_lines": len(lines), "players_on_rosters": sum(map(len, rosters.values())),
            "players_on_reference_team": kept, "players_on_generated_team": len(drawn)}


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
