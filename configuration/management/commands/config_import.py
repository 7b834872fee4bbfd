"""Import a YAML or JSON file into the database layer (or a tenant's): diff first, all or nothing."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from configuration import layers, services


class Command(BaseCommand):
    help = (
        "Import FILE (YAML or JSON, nested keys) as configuration entries. Prints the diff, validates every "
        "value against the schemas, and writes all of it in one transaction or nothing. Keys whose effective "
        "value already matches are skipped; masked secrets (********) keep the stored value."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="A .yaml, .yml or .json file.")
        parser.add_argument("--tenant", default=None, help="Schema name: import into that tenant's overrides.")
        parser.add_argument("--dry-run", action="store_true", help="Print the diff and write nothing.")

    def handle(self, *args, **options):
        path = Path(options["file"])
        try:
            data = layers.parse_text(layers.read_text(path), name=path.name)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc}") from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            # Validation of the whole file happens before the first write; progress shows the plan's rows.
            rows = services.config_import(data=data, tenant=options["tenant"], changed_by="config_import",
                                          dry_run=options["dry_run"])
        except ValidationError as exc:
            raise CommandError("Import refused, nothing written:\n  " + "\n  ".join(exc.messages)) from exc
        changed = [row for row in rows if row.status in ("added", "changed")]
        for row in tqdm(rows, desc="diff", unit="key", disable=options["verbosity"] < 2 or len(rows) < 200,
                        file=self.stderr):
            if row.status in ("added", "changed") or options["verbosity"] >= 2:
                self.stdout.write(row.line())
        summary = f"{len(changed)} to write, {len(rows) - len(changed)} unchanged"
        if options["dry_run"]:
            self.stdout.write(self.style.WARNING(f"Dry run: {summary}; nothing written."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Imported: {summary}."))
