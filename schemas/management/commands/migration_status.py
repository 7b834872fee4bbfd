"""Per schema: pending migrations, changed or deleted applied files, missing tables."""

import json

from django.core.management.base import BaseCommand, CommandError

from schemas.services import drift_report


class Command(BaseCommand):
    help = ("Report migration drift across the public schema and every tenant schema: pending migrations, "
            "applied migrations whose file changed (checksum) or is gone, and tables or columns a schema "
            "claims but lacks. Spare schemas (the sign-up pool) are counted on one line, not checked.")

    def add_arguments(self, parser):
        parser.add_argument("--schema", action="append", dest="schemas", metavar="SCHEMA",
                            help="Only this tenant schema (repeatable). Default: every tenant and public.")
        parser.add_argument("--all", action="store_true", help="List healthy schemas too, not only problems.")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON.")
        parser.add_argument("--check", action="store_true", help="Exit non-zero when there is any problem (CI).")
        parser.add_argument("--no-tables", action="store_true", help="Skip the missing tables/columns check.")

    def handle(self, *args, **options):
        report = drift_report(schemas=options["schemas"], include_public=not options["schemas"],
                              check_tables=not options["no_tables"])
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), indent=2, default=str))
        else:
            self._print(report, show_all=options["all"], verbosity=options["verbosity"])
        if options["check"] and (report.problem_schemas or report.changed_files or report.gone_files):
            raise CommandError(f"{len(report.problem_schemas)} schema(s) with migration problems.")

    def _print(self, report, *, show_all, verbosity):
        style = self.style
        for entry in report.changed_files:
            self.stdout.write(style.ERROR(
                f"CHANGED  {entry['app']}.{entry['name']}  file {entry['file']} differs from the applied one "
                f"in {len(entry['schemas'])} schema(s): {', '.join(entry['schemas'])}"))
            for source in entry.get("sources", []):
                self.stdout.write(style.ERROR(f"         generated from SQL source {source} (checksummed with it)"))
        for entry in report.gone_files:
            self.stdout.write(style.ERROR(
                f"GONE     {entry['app']}.{entry['name']}  applied but the file is gone, "
                f"in {len(entry['schemas'])} schema(s): {', '.join(entry['schemas'])}"))
        for schema in report.schemas:
            if not schema.problems:
                if show_all and verbosity >= 1:
                    self.stdout.write(f"{schema.schema}: {style.SUCCESS('up to date')}")
                continue
            if not schema.exists:
                self.stdout.write(style.ERROR(f"{schema.schema}: the schema does not exist"))
                continue
            self.stdout.write(style.MIGRATE_HEADING(f"{schema.schema}:"))
            for app, name in schema.pending:
                self.stdout.write(f"  pending   {app}.{name}  ({report.types.get((app, name), 'schema')})")
            for app, name in schema.changed:
                self.stdout.write(style.ERROR(f"  changed   {app}.{name}"))
            for app, name in schema.gone:
                self.stdout.write(style.ERROR(f"  file gone {app}.{name}"))
            for table in schema.missing_tables:
                self.stdout.write(style.ERROR(f"  missing table  {table}"))
            for column in schema.missing_columns:
                self.stdout.write(style.ERROR(f"  missing column {column}"))
        problems = len(report.problem_schemas)
        summary = (f"{len(report.schemas)} schema(s) checked in {report.seconds:.2f}s: "
                   f"{problems} with problems, {len(report.changed_files)} changed file(s), "
                   f"{len(report.gone_files)} deleted file(s).")
        self.stdout.write(style.WARNING(summary) if problems else style.SUCCESS(summary))
        for spare in report.spares:  # spare schemas are capacity, not schemas to check: one line
            self.stdout.write(spare.summary)
