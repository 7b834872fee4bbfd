"""Rows for the API tests to read back: every nullable field null somewhere, every list non-empty."""

from __future__ import annotations

import pytest
from django_tenants.utils import schema_context

from configuration import services as config_services
from tasks import actions as task_actions
from tenants import services as tenant_services
from tenants.models import Plan, PlanChange
from tests.foundation import factories


def seed_api_rows(*, lakers) -> dict:
    """Committed or not, as the calling test's database fixture decides; returns the ids worth asking for."""
    professional = Plan.objects.get(code="PROFESSIONAL")
    PlanChange.objects.create(tenant=lakers, from_plan=None, to_plan=professional, changed_by="signup")
    tenant_services.tenant_change_plan(tenant=lakers, plan="ENTERPRISE", changed_by="seed")
    tenant_services.tenant_change_plan(tenant=lakers, plan="PROFESSIONAL", changed_by="seed")
    created = config_services.entry_set(key="cache.ttl_seconds", value=30, changed_by="seed", source="api")
    config_services.entry_delete(key=created.key, tenant=None, changed_by="seed", source="api")
    config_services.entry_set(key="cache.ttl_seconds", value=45, changed_by="seed", source="api")
    task_actions.task_submit(name="system.noop", tenant=lakers, submitted_by="seed")
    task_actions.task_submit(name="system.noop", tenant=None, submitted_by="seed")
    with schema_context("lakers"):
        lal, bos = factories.team("LAL"), factories.team("BOS")
        star = factories.player("LeBron James", lal)
        factories.player("Free Agent", None)
        game = factories.game(lal, bos)
        factories.stat_line(game, star, fgm=10, fga=20, defensive_rebounds=8, assists=7)
    config_services.entry_set(key="branding.welcome_message", value="Welcome to the Lakers", tenant=lakers,
                              changed_by="seed", tenant_admin=True)
    return {"player": star.pk, "team": lal.pk, "game": game.pk}


@pytest.fixture
def api_rows(tenant_lakers):
    return seed_api_rows(lakers=tenant_lakers)
