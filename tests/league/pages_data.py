"""A small season in a tenant's schema for the league pages' tests: LeBron James's 12 games, with scores."""

from __future__ import annotations

import datetime as dt

from django_tenants.utils import schema_context

from tests.foundation import factories

SEASON = "2025-26"
# (points as field goals made, opponent, LAL score, opponent score): 12 games, LAL home in even ones.
# LAL wins 8 (every game but each third), loses 4.
GAMES = [(fgm, "BOS" if i % 3 else "GSW", 110 if i % 3 != 2 else 98, 100 if i % 3 != 2 else 104)
         for i, fgm in enumerate([10, 12, 8, 15, 11, 9, 14, 7, 13, 10, 16, 6])]
WINS, LOSSES = 8, 4


def seed_season(schema_name: str = "lakers") -> dict:
    """Teams LAL, BOS, GSW; LeBron James (LAL) and a team-mate; 12 finished LAL games; returns ids."""
    with schema_context(schema_name):
        teams = {abbr: factories.team(abbr, full_name=name) for abbr, name in (
            ("LAL", "Los Angeles Lakers"), ("BOS", "Boston Celtics"), ("GSW", "Golden State Warriors"))}
        star = factories.player("LeBron James", teams["LAL"])
        mate = factories.player("Austin Reaves", teams["LAL"])
        games = []
        for index, (fgm, opponent, own, other) in enumerate(GAMES):
            home = index % 2 == 0
            lal, opp = teams["LAL"], teams[opponent]
            game = factories.game(lal if home else opp, opp if home else lal,
                                  date=dt.date(2025, 10, 21) + dt.timedelta(days=2 * index), season=SEASON)
            game.home_score, game.away_score = (own, other) if home else (other, own)
            game.save()
            factories.stat_line(game, star, fgm=fgm, fga=fgm * 2, minutes=30 + index, assists=index % 5,
                                defensive_rebounds=5)
            factories.stat_line(game, mate, fgm=4, fga=9, minutes=25)
            games.append(game)
        return {"star": star.pk, "mate": mate.pk, "teams": {k: t.pk for k, t in teams.items()},
                "games": [g.pk for g in games]}
