"""Users, saved models and storage quotas: each refused with a clear error, nothing half written."""

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django_tenants.utils import schema_context

from league import services as league_services
from league.models import StatModel, Team
from tenants import services
from tenants.models import Tenant
from tests.conftest import make_user
from tests.tenants.conftest import put_on_plan


def test_one_user_too_many_is_refused_by_the_database(tenant_lakers, plan_factory):
    put_on_plan(tenant_lakers, plan_factory(max_users=1))
    make_user("lakers", username="first")

    with schema_context("lakers"):
        with pytest.raises(DatabaseError) as raised, transaction.atomic():
            get_user_model().objects.create_user(username="second", password="x")
        error = services.quota_error_from(raised.value)
        assert error is not None and "allows 1 users" in error.messages[0]
        assert get_user_model().objects.count() == 1


def test_the_tenant_admin_stops_offering_new_users_at_the_quota(lakers_client, tenant_lakers, plan_factory):
    put_on_plan(tenant_lakers, plan_factory(max_users=1))  # the logged-in admin is the one user

    page = lakers_client.get("/admin/auth/user/")
    assert "allows 1 users" in page.content.decode()
    assert lakers_client.get("/admin/auth/user/add/").status_code == 403


def test_one_model_too_many_is_refused_through_the_api_with_403(lakers_client, tenant_lakers, plan_factory):
    put_on_plan(tenant_lakers, plan_factory(max_models=1))

    first = lakers_client.post("/api/v1/models/", {"name": "ppg-10"}, content_type="application/json")
    second = lakers_client.post("/api/v1/models/", {"name": "ppg-20"}, content_type="application/json")

    assert first.status_code == 201
    assert second.status_code == 403
    assert second.json()["error"]["code"] == "quota_exceeded"
    assert "allows 1 saved models" in second.json()["error"]["message"]
    with schema_context("lakers"):
        assert list(StatModel.objects.values_list("name", flat=True)) == ["ppg-10"]


def test_model_quota_is_per_tenant(two_tenants, plan_factory):
    lakers, warriors = two_tenants
    put_on_plan(lakers, plan_factory(max_models=1))
    put_on_plan(warriors, Tenant.objects.get(pk=lakers.pk).plan)
    with schema_context("lakers"):
        league_services.stat_model_create(name="a")
    with schema_context("warriors"):
        league_services.stat_model_create(name="a")  # the Lakers' model does not count here
        assert StatModel.objects.count() == 1


def test_over_storage_refuses_writes_but_not_reads(lakers_client, tenant_lakers, plan_factory):
    put_on_plan(tenant_lakers, plan_factory(storage_bytes=1024))
    services.tenant_usage_refresh(tenants=[tenant_lakers])
    tenant_lakers.refresh_from_db()
    assert tenant_lakers.storage_bytes > 1024  # the real size of the schema, measured by PostgreSQL

    write = lakers_client.post("/api/v1/models/", {"name": "x"}, content_type="application/json")
    read = lakers_client.get("/api/v1/teams/")
    admin_write = lakers_client.post("/admin/league/team/add/", {"abbreviation": "LAL"})

    assert write.status_code == 403 and write.json()["error"]["code"] == "storage_quota_exceeded"
    assert read.status_code == 200
    assert admin_write.status_code == 403
    assert lakers_client.get("/admin/league/team/").status_code == 200
    with schema_context("lakers"):
        assert not StatModel.objects.exists() and not Team.objects.exists()


def test_usage_refresh_records_storage_users_and_models_per_tenant(two_tenants):
    lakers, warriors = two_tenants
    make_user("lakers", username="a")
    make_user("lakers", username="b")
    with schema_context("lakers"):
        league_services.stat_model_create(name="m")

    services.tenant_usage_refresh(tenants=[lakers, warriors])

    lakers_day, warriors_day = lakers.usage_days.get(), warriors.usage_days.get()
    assert (lakers_day.users, lakers_day.saved_models) == (2, 1)
    assert (warriors_day.users, warriors_day.saved_models) == (0, 0)
    assert lakers_day.storage_bytes > 0


def test_the_tenant_admin_adds_users_under_the_quota_and_refuses_past_it(lakers_client, tenant_lakers, plan_factory):
    put_on_plan(tenant_lakers, plan_factory(max_users=2))
    form = {"username": "scout", "password1": "Sh0wtime-Lakers", "password2": "Sh0wtime-Lakers",
            "usable_password": "true"}

    added = lakers_client.post("/admin/auth/user/add/", form)
    assert added.status_code == 302
    with schema_context("lakers"):
        assert get_user_model().objects.filter(username="scout").exists()

    # The admin and the scout fill the two seats: no more "Add".
    page = lakers_client.get("/admin/auth/user/add/")
    assert page.status_code == 403
