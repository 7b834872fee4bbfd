"""Small builders of league data inside a tenant schema."""

import datetime as dt
import itertools

from league.models import Game, Player, PlayerGameStat, Team

_ids = itertools.count(1000)


def team(abbreviation: str, **fields) -> Team:
    return Team.objects.create(
        nba_id=next(_ids), abbreviation=abbreviation, full_name=fields.pop("full_name", f"Team {abbreviation}"),
        nickname=abbreviation, city="City", year_founded=1950, **fields,
    )


def player(full_name: str, team: Team | None = None, **fields) -> Player:
    first, _, last = full_name.partition(" ")
    return Player.objects.create(
        nba_id=next(_ids), first_name=first, last_name=last or first, full_name=full_name, team=team,
        is_active=True, **fields,
    )


def game(home: Team, away: Team, *, date: dt.date | None = None, season: str = "2025-26") -> Game:
    return Game.objects.create(home_team=home, away_team=away, date=date or dt.date(2025, 10, 21), season=season)


def stat_line(game: Game, player: Player, *, fgm=0, fga=0, tpm=0, tpa=0, ftm=0, fta=0, **fields) -> PlayerGameStat:
    return PlayerGameStat.objects.create(
        game=game, player=player, team=fields.pop("team", player.team),
        field_goals_made=fgm, field_goals_attempted=fga, three_pointers_made=tpm,
        three_pointers_attempted=tpa, free_throws_made=ftm, free_throws_attempted=fta,
        points=fields.pop("points", 2 * fgm + tpm + ftm), **fields,
    )
