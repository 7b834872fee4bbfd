from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from tqdm import tqdm

from league import services


class Command(BaseCommand):
    help = ("Generate a plausible, seed-deterministic season of games and stat lines for demos. Players keep "
            "the team the reference data gives them; the other roster places are drawn and marked generated.")

    def add_arguments(self, parser):
        parser.add_argument("--season", default="2025-26")
        parser.add_argument("--games", type=int, default=1230)
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args, season, games, seed, verbosity, **options):
        if connection.schema_name == "public":
            raise CommandError("Run it in a tenant: manage.py tenant_command generate_season --schema=lakers")
        with tqdm(total=games, desc=f"{connection.schema_name} {season}", unit="game",
                  disable=verbosity == 0, file=self.stderr) as bar:
            try:
                counts = services.season_generate(
                    season=season, games=games, seed=seed, progress=lambda n: bar.update(n - bar.n)
                )
            except ValidationError as error:
                raise CommandError("; ".join(error.messages)) from error
        if verbosity:
            self.stdout.write(self.style.SUCCESS(
                f"{counts['games']} games, {counts['stat_lines']} stat lines in {connection.schema_name}."
            ))
            self.stdout.write(
                f"Rosters: {counts['players_on_reference_team']} players on the team the reference data gives "
                f"them; {counts['players_on_generated_team']} players on a generated team (the reference data "
                f"gives them none), marked as generated in the admin and the API."
            )
