"""reports.max_rows caps every export: past the cap the export is refused whole, nothing is written."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from configuration import config
from tasks import actions as task_actions
from tasks.actions import TaskContext
from tenants.models import UsageDay
from tenants.tasks import export_usage_report


def _ledger(tenant, days: int) -> None:
    today = timezone.now().date()
    for offset in range(days):
        UsageDay.objects.create(tenant=tenant, date=today - dt.timedelta(days=offset), api_calls=offset)


def _run_export(tenant, *, days: int = 30) -> dict:
    run = task_actions.task_submit(name="tenants.export_usage_report", arguments={"days": days}, tenant=tenant)
    return export_usage_report(TaskContext(run=run, attempt=1, tenant=tenant), days=days)


def _reports(schema_name: str) -> set[str]:
    directory = settings.MEDIA_ROOT / schema_name / "reports"
    return {path.name for path in directory.iterdir()} if directory.is_dir() else set()


def test_the_usage_report_task_refuses_a_report_past_the_tenants_row_cap(two_tenants):
    lakers, warriors = two_tenants
    _ledger(lakers, 5)
    _ledger(warriors, 5)
    config.set("reports.max_rows", 4, tenant=lakers)

    before = _reports("lakers")
    with pytest.raises(ValueError, match=r"5 rows.*reports\.max_rows.*4"):
        _run_export(lakers)
    assert _reports("lakers") == before  # no partial file left behind

    assert _run_export(warriors)["rows"] == 5  # another tenant's cap is its own
    config.set("reports.max_rows", 5, tenant=lakers)
    assert _run_export(lakers)["rows"] == 5


def test_the_operators_usage_report_uses_the_operator_view(two_tenants):
    lakers, warriors = two_tenants
    _ledger(lakers, 3)
    _ledger(warriors, 3)
    config.set("reports.max_rows", 50, tenant=lakers)  # a tenant's own cap says nothing about the operator's
    config.set("reports.max_rows", 5)

    with pytest.raises(ValueError, match="6 rows"):
        _run_export(None)
    config.set("reports.max_rows", 6)
    assert _run_export(None)["rows"] == 6


def test_usage_export_refuses_a_month_past_the_row_cap(two_tenants, tmp_path):
    lakers, warriors = two_tenants
    for day in (1, 2, 3):
        UsageDay.objects.create(tenant=lakers, date=dt.date(2026, 11, day), api_calls=day)
        UsageDay.objects.create(tenant=warriors, date=dt.date(2026, 11, day), api_calls=day)
    config.set("reports.max_rows", 5)
    target = tmp_path / "usage.csv"

    with pytest.raises(CommandError, match=r"6 rows.*reports\.max_rows.*5"):
        call_command("usage_export", "--month", "2026-11", "--output", str(target), stdout=io.StringIO(),
                     stderr=io.StringIO())
    assert not target.exists()

    config.set("reports.max_rows", 6)
    out = io.StringIO()
    call_command("usage_export", "--month", "2026-11", stdout=out, stderr=io.StringIO())
    assert len(out.getvalue().splitlines()) == 7  # the header and six rows
