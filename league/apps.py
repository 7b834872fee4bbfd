from django.apps import AppConfig


class LeagueConfig(AppConfig):
    """A tenant's NBA data: teams, players, games and stat lines."""

    name = "league"

    def ready(self):
        from league import services
        from tenants.provisioning import schema_seed_register

        # Every new tenant schema starts with the 30 teams and the players list (pooled schemas carry them).
        schema_seed_register(name="nba_reference", load=services.reference_load, files=services.reference_files)
