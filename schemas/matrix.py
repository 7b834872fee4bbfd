"""The schemas × apps matrix of the operator admin, one page at a time.

The page's rows are read live, and only the page's schemas (their django_migrations, their catalog and their
ledger rows): a hundred schemas' worth whatever the tenant count. What needs every schema (how many have a
problem, which ones for the problems-only filter, changed and deleted migration files) comes from one full
`drift_report`, cached like the migration summary: recomputed when the ledger, the tenants or the migration
files change, or after LEDGER_SUMMARY_SECONDS. Each migration named (a cell's latest applied, an app's latest
on disk, a pending one) carries its type, schema, data or hybrid, as the files on disk say.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.paginator import Page, Paginator

from schemas import selectors
from schemas.services import DriftReport, drift_report


@dataclass
class MatrixPage:
    page: Page  # of schema names
    report: DriftReport  # of the page's schemas only
    total: int
    problem_count: int
    changed_files: list[dict]
    gone_files: list[dict]
    seconds: float  # of the full check the counts come from
    types: dict[tuple[str, str], str]  # (app, name): schema, data or hybrid, as the file on disk says

    def type_of(self, app: str, name: str | None) -> str:
        """A migration's type; "" for none (no migration applied) or a file that is gone."""
        return self.types.get((app, name), "") if name else ""


def drift_overview_cached() -> dict:
    """Every schema's name and whether it has a problem, with the changed and deleted files, from a cached full
    check."""
    key = "schemas:drift-overview:" + hashlib.sha256(
        repr((selectors.ledger_version(), selectors.migration_files_key())).encode()).hexdigest()[:32]
    overview = cache.get(key)
    if overview is None:
        report = drift_report()
        overview = {"schemas": [s.schema for s in report.schemas],
                    "problems": [s.schema for s in report.problem_schemas],
                    "changed_files": report.changed_files, "gone_files": report.gone_files,
                    "seconds": report.seconds}
        cache.set(key, overview, selectors.LEDGER_SUMMARY_SECONDS)
    return overview


def matrix_page(*, number: str | int | None, search: str = "", problems_only: bool = False,
                page_size: int = 100) -> MatrixPage:
    overview = drift_overview_cached()
    if problems_only:
        names = overview["problems"]
    else:
        names = [settings.PUBLIC_SCHEMA_NAME, *selectors.tenant_schema_names()]
    if search:
        names = [name for name in names if search.lower() in name.lower()]
    page = Paginator(names, page_size).get_page(number)
    report = drift_report(schemas=list(page.object_list), include_public=False)
    if problems_only:  # the overview may be seconds old: a schema fixed since is not listed
        report.schemas = [s for s in report.schemas if s.problems]
    return MatrixPage(page=page, report=report, total=len(overview["schemas"]),
                      problem_count=len(overview["problems"]), changed_files=overview["changed_files"],
                      gone_files=overview["gone_files"], seconds=overview["seconds"],
                      types=selectors.migration_types())
