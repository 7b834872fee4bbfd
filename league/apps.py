from django.apps import AppConfig


class LeagueConfig(AppConfig):
    """A tenant's NBA data: teams, players, games and stat lines."""

    name = "league"
