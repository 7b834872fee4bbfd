from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from league import services


class Command(BaseCommand):
    help = "Load the 30 NBA teams and the NBA players list (shipped offline) into a tenant schema."

    def add_arguments(self, parser):
        parser.add_argument("--active-only", action="store_true", help="Load only active players.")

    def handle(self, *args, active_only, verbosity, **options):
        if connection.schema_name == "public":
            raise CommandError("Run it in a tenant: manage.py tenant_command load_nba_reference --schema=lakers")
        counts = services.reference_load(active_only=active_only)
        if verbosity:
            self.stdout.write(self.style.SUCCESS(
                f"Loaded {counts['teams']} teams and {counts['players']} players into {connection.schema_name}."
            ))
