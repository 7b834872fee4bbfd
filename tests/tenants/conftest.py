import datetime as dt
import time

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from tenants import quotas as quota_kinds
from tenants import services
from tenants.models import Plan, UsageDay


@pytest.fixture
def plan_factory(db):
    def make(code="TEST", **quotas):
        defaults = {field: None for field in quota_kinds.plan_limit_fields()}
        defaults.update(quotas)
        return Plan.objects.create(code=code, name=code.title(), **defaults)

    return make


def put_on_plan(tenant, plan):
    tenant.plan = plan
    tenant.save(update_fields=["plan"])
    return tenant


@pytest.fixture
def api_key_for():
    def make(tenant, scope="write"):
        _, raw = services.api_key_create(tenant=tenant, name="tests", scope=scope)
        return {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}, {"Authorization": f"Api-Key {raw}"}

    return make


def free_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('max_connections')::int - (SELECT count(*) FROM pg_stat_activity)")
        return cursor.fetchone()[0]


@pytest.fixture
def in_schema():
    return schema_context


def calls_today(tenant) -> int:
    """The tenant's API calls of today's ledger row (0 without one)."""
    day = timezone.now().astimezone(dt.UTC).date()
    return UsageDay.objects.filter(tenant=tenant, date=day).values_list("api_calls", flat=True).first() or 0


def away_from_a_minute_boundary(margin: float = 8.0) -> None:
    """Per-minute windows are UTC minutes: start a counting test where the whole test fits in one."""
    left = 60 - (time.time() % 60)
    if left < margin:
        time.sleep(left + 0.2)
