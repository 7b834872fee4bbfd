"""Billing export of the usage ledger: one row per tenant per day of a month, as CSV or JSON."""

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from configuration import keys
from tenants.selectors import USAGE_EXPORT_FIELDS, usage_month_rows

FORMATS = ("csv", "json")


class Command(BaseCommand):
    help = (
        "Export the usage ledger of a month for billing: one row per tenant per day "
        f"({', '.join(USAGE_EXPORT_FIELDS)}), as CSV or JSON, to stdout or a file."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", required=True, help="The month to export, as YYYY-MM (e.g. 2026-11).")
        parser.add_argument("--format", default="csv", dest="fmt", help="csv (default) or json.")
        parser.add_argument("--output", "-o", help="Write to this file instead of stdout (replaced atomically).")

    def handle(self, *args, month, fmt, output=None, verbosity=1, **options):
        fmt = (fmt or "").lower()
        if fmt not in FORMATS:
            raise CommandError(f"Unknown format {fmt!r}; use one of {', '.join(FORMATS)}.")
        try:
            rows = usage_month_rows(month=month)
        except ValueError as error:
            raise CommandError(str(error)) from error
        cap = keys.reports_max_rows(tenant="public")
        if len(rows) > cap:
            # A bill cut short would read as complete: refuse the whole export instead.
            raise CommandError(f"{month} has {len(rows)} rows, more than reports.max_rows ({cap}); nothing was "
                               "exported. Raise reports.max_rows to export it.")

        show_progress = bool(output) and verbosity >= 1
        rows_iter = tqdm(rows, desc=f"usage {month}", unit="row", file=self.stderr, disable=not show_progress)
        buffer = io.StringIO()
        if fmt == "csv":
            writer = csv.DictWriter(buffer, fieldnames=USAGE_EXPORT_FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows_iter)
        else:
            json.dump(list(rows_iter), buffer, indent=1)
            buffer.write("\n")

        if not output:
            self.stdout.write(buffer.getvalue(), ending="")
            return
        path = Path(output)
        if not path.parent.is_dir():
            raise CommandError(f"The directory {str(path.parent)!r} does not exist.")
        # Write next to the target and rename, so a reader never sees half an export.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
                file.write(buffer.getvalue())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        if verbosity >= 1:
            self.stdout.write(self.style.SUCCESS(f"Exported {len(rows)} rows for {month} to {path}."))
