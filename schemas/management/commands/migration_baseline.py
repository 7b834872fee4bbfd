"""Adopt migrations applied before the ledger existed: record them with today's file checksums."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from schemas.ledger import ledger_baseline


class Command(BaseCommand):
    help = ("Record in the migration ledger, with the checksum of today's file, every migration a schema applied "
            "before the ledger existed, so later edits to those files are reported as drift.")

    def add_arguments(self, parser):
        parser.add_argument("--schema", action="append", dest="schemas", metavar="SCHEMA",
                            help="Only this schema (repeatable). Default: public and every tenant schema.")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be recorded; write nothing.")
        parser.add_argument("--operator", default=None, help="Name recorded in the ledger (default: the OS user).")

    def handle(self, *args, **options):
        bar = tqdm(unit="schema", file=self.stderr._out, disable=options["verbosity"] < 1)
        try:
            counts = ledger_baseline(schemas=options["schemas"], by=options["operator"], dry_run=options["dry_run"],
                                     progress=lambda schema, count: bar.update(1))
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        finally:
            bar.close()
        total = sum(counts.values())
        verb = "would record" if options["dry_run"] else "recorded"
        for schema, count in counts.items():
            if count and options["verbosity"] >= 2:
                self.stdout.write(f"{schema}: {count}")
        self.stdout.write(self.style.SUCCESS(
            f"{verb} {total} migration(s) in {sum(1 for c in counts.values() if c)} of {len(counts)} schema(s)."))
