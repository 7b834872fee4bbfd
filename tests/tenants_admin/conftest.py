"""Fixtures of the tenant admin tests: plans on the prepared tenants, ledger rows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from tenants.models import Plan, Tenant, UsageDay


def utc_today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def put_on_plan(tenant: Tenant, code: str) -> Tenant:
    """Set a plan directly (the prepared test tenants have none); the test's transaction undoes it."""
    Tenant.objects.filter(pk=tenant.pk).update(plan=Plan.objects.get(code=code))
    tenant.refresh_from_db()
    return tenant


def ledger(tenant: Tenant, day: dt.date, **fields) -> UsageDay:
    row, _ = UsageDay.objects.update_or_create(tenant=tenant, date=day, defaults=fields)
    return row


@pytest.fixture
def lakers_free(tenant_lakers):
    return put_on_plan(tenant_lakers, "FREE")


@pytest.fixture
def warriors_starter(tenant_warriors):
    return put_on_plan(tenant_warriors, "STARTER")


@pytest.fixture
def export_dir(settings, tmp_path):
    settings.TENANT_EXPORT_DIR = tmp_path / "exports"
    return settings.TENANT_EXPORT_DIR
