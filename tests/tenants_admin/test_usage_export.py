"""`manage.py usage_export`: the month's ledger for billing, as CSV or JSON, to stdout or a file."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from django.core.management import CommandError, call_command

from tenants import services
from tenants.models import PlanChange

from .conftest import ledger

HEADER = ["tenant_schema", "tenant_name", "plan", "date", "api_calls", "peak_concurrency", "storage_bytes", "users",
          "saved_models"]


@pytest.fixture
def november(lakers_free, warriors_starter):
    d = dt.date
    ledger(lakers_free, d(2026, 11, 1), api_calls=10, peak_concurrency=2, storage_bytes=1000, users=1,
           saved_models=1)
    ledger(lakers_free, d(2026, 11, 30), api_calls=99, peak_concurrency=1, storage_bytes=1200, users=1)
    ledger(warriors_starter, d(2026, 11, 15), api_calls=5000, peak_concurrency=8, storage_bytes=9, users=4,
           saved_models=3)
    ledger(lakers_free, d(2026, 10, 31), api_calls=1)  # the month before
    ledger(lakers_free, d(2026, 12, 1), api_calls=2)  # the month after


def export(*args) -> str:
    out = io.StringIO()
    call_command("usage_export", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_csv_has_one_row_per_tenant_per_ledger_day_of_the_month(november):
    rows = list(csv.reader(io.StringIO(export("--month", "2026-11", "--format", "csv"))))

    assert rows[0] == HEADER
    assert rows[1:] == [
        ["lakers", "Los Angeles Lakers", "FREE", "2026-11-01", "10", "2", "1000", "1", "1"],
        ["lakers", "Los Angeles Lakers", "FREE", "2026-11-30", "99", "1", "1200", "1", "0"],
        ["warriors", "Golden State Warriors", "STARTER", "2026-11-15", "5000", "8", "9", "4", "3"],
    ]


def test_json_has_the_same_rows_with_numbers(november):
    rows = json.loads(export("--month", "2026-11", "--format", "json"))

    assert [(r["tenant_schema"], r["date"], r["api_calls"]) for r in rows] == [
        ("lakers", "2026-11-01", 10), ("lakers", "2026-11-30", 99), ("warriors", "2026-11-15", 5000),
    ]
    assert set(rows[0]) == set(HEADER)
    assert rows[2]["storage_bytes"] == 9 and rows[2]["plan"] == "STARTER"


def test_each_day_is_billed_on_the_plan_in_force_that_day(lakers_free):
    ledger(lakers_free, dt.date(2026, 11, 1), api_calls=10)
    ledger(lakers_free, dt.date(2026, 11, 20), api_calls=20)
    services.tenant_change_plan(tenant=lakers_free, plan="STARTER")
    PlanChange.objects.filter(tenant=lakers_free, to_plan__code="STARTER").update(
        changed_at=dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC)
    )

    rows = json.loads(export("--month", "2026-11", "--format", "json"))

    assert [(r["date"], r["plan"]) for r in rows] == [("2026-11-01", "FREE"), ("2026-11-20", "STARTER")]


def test_output_goes_to_a_file_when_asked(november, tmp_path):
    target = tmp_path / "billing-2026-11.csv"
    out = io.StringIO()
    call_command("usage_export", "--month", "2026-11", "--format", "csv", "--output", str(target), stdout=out,
                 stderr=io.StringIO())

    assert target.read_text().splitlines()[0] == ",".join(HEADER)
    assert len(target.read_text().splitlines()) == 4
    assert "Exported 3 rows for 2026-11" in out.getvalue()
    assert [p.name for p in tmp_path.iterdir()] == ["billing-2026-11.csv"]  # no temporary file left


def test_an_empty_month_is_just_the_header(db):
    assert export("--month", "2031-02").splitlines() == [",".join(HEADER)]
    assert json.loads(export("--month", "2031-02", "--format", "json")) == []


@pytest.mark.parametrize("month", ["2026-13", "2026/11", "november", "2026-1-1", ""])
def test_a_bad_month_is_a_command_error(db, month):
    with pytest.raises(CommandError, match="is not a month; use YYYY-MM"):
        export("--month", month)


def test_a_bad_format_is_a_command_error(db):
    with pytest.raises(CommandError, match="Unknown format 'xml'; use one of csv, json"):
        export("--month", "2026-11", "--format", "xml")


def test_a_missing_month_is_a_command_error(db):
    with pytest.raises(CommandError, match="--month"):
        export("--format", "csv")


def test_an_output_in_a_missing_directory_is_a_command_error(db, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        export("--month", "2026-11", "--output", str(tmp_path / "nowhere" / "out.csv"))
