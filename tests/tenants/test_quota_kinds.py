"""The quota registry (tenants.quotas) drives every place a quota shows or bites.

The example adds a quota kind from this one file, standing in for the two a real kind touches (its
QuotaKind in tenants/quotas.py, and one migration adding its plan column and trigger): registered,
it shows in the plan admin and the plans API, the usage refresh counts it, the admin pre-check words
its refusal, and its trigger refuses the row past the limit in the tenant's schema.
"""

import datetime as dt

import pytest
from django.db import DatabaseError, connection, models, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from league.models import Team
from tenants import metering, quotas, services
from tenants.models import Plan, RequestLease, UsageDay
from tests.tenants.conftest import put_on_plan

TEAMS = quotas.QuotaKind(
    "teams", "max_teams", quotas.Measure.ROWS, "teams", "teams", table="league_team",
    trigger="courtside_team_quota",
    field=lambda: models.PositiveIntegerField("teams", null=True, blank=True, help_text="Empty means unlimited."),
)


@pytest.fixture
def teams_kind(tenant_lakers):
    """What the kind's migration does (add the plan column, create the trigger), inside the test's transaction."""
    field = TEAMS.field()
    Plan.add_to_class(TEAMS.plan_field, field)
    quotas.register(TEAMS)
    try:
        with connection.schema_editor(atomic=False) as editor:
            editor.add_field(Plan, field)
        create, _drop = quotas.row_quota_trigger_sql(TEAMS)
        with schema_context("lakers"), connection.cursor() as cursor:
            cursor.execute(create)
        yield TEAMS
    finally:
        quotas.unregister(TEAMS.name)
        Plan._meta.local_fields.remove(field)
        Plan._meta._expire_cache()
        delattr(Plan, TEAMS.plan_field)


def test_a_new_kind_shows_in_the_plan_admin_and_the_plans_api(teams_kind, operator_client):
    Plan.objects.filter(code="FREE").update(max_teams=40)

    page = operator_client.get("/admin/tenants/plan/").content.decode()
    assert "column-teams_display" in page and 'class="field-teams_display">40<' in page
    body = operator_client.get("/api/v1/plans/").json()
    plans = {plan["code"]: plan for plan in (body["results"] if isinstance(body, dict) else body)}
    assert plans["FREE"]["max_teams"] == 40 and plans["ENTERPRISE"]["max_teams"] is None
    assert list(plans["FREE"])[:3] == ["code", "name", "api_calls_per_day"]


def _team(number: int) -> Team:
    return Team.objects.create(nba_id=99_000_000 + number, abbreviation=f"X{number}", full_name=f"Expansion {number}",
                               nickname="Expansion", city="Seattle", year_founded=2026)


def test_the_usage_refresh_counts_the_new_kind_and_its_trigger_refuses_past_the_limit(teams_kind, tenant_lakers):
    with schema_context("lakers"):
        _team(1), _team(2)
    sql, counted = quotas.row_counts_sql("lakers", connection.ops.quote_name)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        counts = dict(zip([kind.name for kind in counted], cursor.fetchone(), strict=True))
    with schema_context("lakers"):
        teams = Team.objects.count()
    assert counts["teams"] == teams > 0
    assert services.tenant_usage_refresh(tenants=[tenant_lakers]) == 1  # a kind without a ledger column

    Plan.objects.filter(pk=tenant_lakers.plan_id).update(max_teams=teams)
    tenant_lakers.plan.refresh_from_db()
    refusal = quotas.row_quota_refusal(plan=tenant_lakers.plan, name="teams", count=teams)
    assert refusal == f"The {tenant_lakers.plan.name} plan allows {teams} teams; this tenant has {teams}."
    with schema_context("lakers"), pytest.raises(DatabaseError) as refused, transaction.atomic():
        _team(3)
    assert services.quota_error_from(refused.value).messages == [refusal]


@pytest.mark.django_db(transaction=True)
def test_a_batch_of_calls_counts_against_the_day_at_once_and_never_against_the_minute(tenant_lakers, plan_factory):
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=10))
    today = timezone.now().astimezone(dt.UTC).date()

    admission = metering.calls_admit(tenant=tenant_lakers, calls=7)

    day = UsageDay.objects.get(tenant=tenant_lakers, date=today)
    assert (admission.calls, day.api_calls, day.burst_calls, day.burst_window_start) == (7, 7, 0, None)
    with pytest.raises(Exception) as refused:
        metering.calls_admit(tenant=tenant_lakers, calls=4)  # 7 + 4 > 10: none of the four counts
    assert refused.value.code == "daily_quota_exceeded" and refused.value.status == 429
    assert UsageDay.objects.get(pk=day.pk).api_calls == 7
    assert metering.calls_admit(tenant=tenant_lakers, calls=3).remaining == 0
    assert UsageDay.objects.get(pk=day.pk).api_calls == 10


def test_one_request_path_admits_once_and_releases_in_the_scope(tenant_lakers, plan_factory):
    """Outside HTTP (the MCP server, a command): admitted() takes one lease and gives it back."""
    put_on_plan(tenant_lakers, plan_factory(api_calls_per_day=5, max_concurrent_requests=1))
    with metering.admitted(tenant=tenant_lakers, authenticated=True) as admission:
        assert RequestLease.objects.filter(tenant=tenant_lakers).count() == 1
        assert admission.headers() == {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4"}
        with pytest.raises(Exception) as busy:
            metering.admit(tenant=tenant_lakers, authenticated=True)
        assert busy.value.code == "concurrency_limit_exceeded"
    assert RequestLease.objects.filter(tenant=tenant_lakers).count() == 0


def test_the_shipped_row_quota_triggers_are_the_registrys():
    """league.0003 (history, checksummed by the ledger) creates exactly what the registry's kinds generate."""
    import importlib

    shipped = importlib.import_module("league.migrations.0003_quota_triggers").Migration.operations
    generated = [quotas.row_quota_trigger_sql(kind) for kind in quotas.kinds(quotas.Measure.ROWS)]
    assert [(operation.sql, operation.reverse_sql) for operation in shipped] == generated
