"""Turn a SQL file (up and down) into a normal, reversible Django migration of an app."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from schemas.sqlfiles import TYPES, migration_write, sql_file_load


class Command(BaseCommand):
    help = ("Write the next migration of APP from a SQL file in the seed's format (-- version/name/type/"
            "description headers, -- up: and -- down: sections), as RunSQL with reverse_sql. The SQL is tried "
            "on a real schema (up, down, up) inside a transaction that is rolled back; on any error nothing "
            "is written and the file and line are named.")

    def add_arguments(self, parser):
        parser.add_argument("app_label", help="App whose migrations folder receives the migration.")
        parser.add_argument("--from", dest="path", metavar="FILE", help="SQL file in the seed's format.")
        parser.add_argument("--name", help="Migration name, with --up and --down files.")
        parser.add_argument("--up", metavar="FILE", help="SQL that applies the change.")
        parser.add_argument("--down", metavar="FILE", help="SQL that reverses it.")
        parser.add_argument("--type", default="schema", choices=TYPES, help="With --name: schema, data or hybrid.")
        parser.add_argument("--description", default="", help="With --name: one line for the docstring.")
        parser.add_argument("--schema", help="Schema to try the SQL on (default: the first tenant, or public).")
        parser.add_argument("--no-verify", action="store_true",
                            help="Do not try the SQL on PostgreSQL first (only the format is checked).")

    def handle(self, *args, **options):
        try:
            sql_file = sql_file_load(path=options["path"], name=options["name"], up=options["up"],
                                     down=options["down"], type_=options["type"],
                                     description=options["description"])
            target = migration_write(app_label=options["app_label"], sql_file=sql_file,
                                     source=options["path"] or options["up"], verify_schema=options["schema"],
                                     skip_verify=options["no_verify"],
                                     sources=[p for p in (options["path"], options["up"], options["down"]) if p])
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stdout.write(self.style.SUCCESS(f"Wrote {target} ({sql_file.type}, version {sql_file.version})."))
