"""Create, change plan, suspend, reactivate, delete: from the API and from commands."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_context

from league.models import Team
from tenants.models import PlanChange, Tenant
from tests.conftest import TenantClient, tenant_host


def _schema_exists(name):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


def test_the_operator_api_creates_a_tenant_with_plan_domain_and_admin(operator_client):
    response = operator_client.post(
        "/api/v1/tenants/",
        {"name": "Boston Celtics", "schema_name": "celtics", "plan": "STARTER",
         "admin_email": "gm@celtics.example", "admin_password": "banner-18-times"},
        content_type="application/json",
    )

    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["plan"], body["domains"], body["status"]) == ("STARTER", ["celtics.localhost"], "active")
    assert "admin_password" not in body
    assert _schema_exists("celtics")
    login = TenantClient(tenant_host("celtics")).post(
        "/admin/login/", {"username": "admin", "password": "banner-18-times"})
    assert login.status_code == 302
    assert PlanChange.objects.get(tenant__schema_name="celtics").to_plan.code == "STARTER"


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"schema_name": "lakers"}, "schema_name", "already exists"),
        ({"schema_name": "public"}, "schema_name", "reserved"),
        ({"schema_name": "Bad-Name"}, "schema_name", "lowercase"),
        ({"domain": "not a domain"}, "domain", "not a valid host name"),
        ({"domain": "warriors.localhost"}, "domain", "already serves"),
        ({"plan": "PLATINUM"}, "plan", "Unknown plan"),
    ],
)
def test_bad_tenant_input_gets_a_clear_400_and_creates_nothing(operator_client, tenant_warriors, payload, field,
                                                               message):
    before = set(Tenant.objects.values_list("schema_name", flat=True))
    data = {"name": "Newco", "schema_name": "newco", **payload}

    response = operator_client.post("/api/v1/tenants/", data, content_type="application/json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert field in error["detail"] and message in error["message"]
    assert set(Tenant.objects.values_list("schema_name", flat=True)) == before
    assert not _schema_exists("newco")


def test_the_operator_api_is_for_operators_only(tenant_lakers, db):
    from tests.conftest import make_user

    client = TenantClient("localhost")
    client.login_user(make_user("public", username="viewer", staff=False), "public")

    assert client.get("/api/v1/tenants/").status_code == 403


def test_a_suspended_tenant_gets_403_in_the_api_and_a_read_only_admin(operator_client, lakers_client):
    assert operator_client.post("/api/v1/tenants/lakers/suspend/").json()["status"] == "suspended"

    api = lakers_client.get("/api/v1/teams/")
    assert api.status_code == 403 and api.json()["error"]["code"] == "tenant_suspended"
    assert lakers_client.get("/admin/league/team/").status_code == 200
    assert lakers_client.get("/admin/league/team/add/").status_code == 403
    refused = lakers_client.post("/admin/league/team/add/", {"abbreviation": "LAL"})
    assert refused.status_code == 403
    with schema_context("lakers"):
        assert Team.objects.count() == 0

    again = operator_client.post("/api/v1/tenants/lakers/suspend/")
    assert again.status_code == 400 and "already suspended" in again.json()["error"]["message"]

    assert operator_client.post("/api/v1/tenants/lakers/reactivate/").json()["status"] == "active"
    assert lakers_client.get("/api/v1/teams/").status_code == 200
    assert lakers_client.get("/admin/league/team/add/").status_code == 200


def test_suspend_and_reactivate_from_the_command_line(tenant_lakers):
    call_command("tenant", "suspend", "lakers", stdout=StringIO())
    assert Tenant.objects.get(schema_name="lakers").status == "suspended"
    call_command("tenant", "reactivate", "lakers", stdout=StringIO())
    assert Tenant.objects.get(schema_name="lakers").status == "active"
    with pytest.raises(CommandError, match="already active"):
        call_command("tenant", "reactivate", "lakers", stdout=StringIO())
    with pytest.raises(CommandError, match="No tenant"):
        call_command("tenant", "suspend", "nobody", stdout=StringIO())


def test_commands_create_and_change_plan_with_clear_errors(db, public_tenant):
    call_command("tenant", "create", "knicks", "--name", "New York Knicks", "--plan", "free", stdout=StringIO())
    assert Tenant.objects.get(schema_name="knicks").plan.code == "FREE"
    call_command("tenant", "plan", "knicks", "ENTERPRISE", stdout=StringIO())
    assert Tenant.objects.get(schema_name="knicks").plan.code == "ENTERPRISE"
    with pytest.raises(CommandError, match="Unknown plan"):
        call_command("tenant", "plan", "knicks", "GOLD", stdout=StringIO())
    with pytest.raises(CommandError, match="reserved"):
        call_command("tenant", "create", "public", "--name", "Nope", stdout=StringIO())


def test_delete_exports_the_data_then_drops_the_schema(tenant_lakers, settings, tmp_path):
    settings.TENANT_EXPORT_DIR = tmp_path
    with schema_context("lakers"):
        Team.objects.create(nba_id=1610612747, abbreviation="LAL", full_name="Los Angeles Lakers",
                            nickname="Lakers", city="Los Angeles", year_founded=1948)

    with pytest.raises(CommandError, match="Type the schema name"):
        call_command("tenant", "delete", "lakers", "--confirm", "warriors", stdout=StringIO())
    assert _schema_exists("lakers") and not list(tmp_path.iterdir())

    out = StringIO()
    call_command("tenant", "delete", "lakers", "--confirm", "lakers", stdout=out)

    export, account = sorted(tmp_path.iterdir(), key=lambda p: "account" in p.name)
    assert str(export) in out.getvalue()
    assert [row["fields"]["schema_name"] for row in json.loads(account.read_text())
            if row["model"] == "tenants.tenant"] == ["lakers"]
    rows = json.loads(export.read_text())
    assert any(row["model"] == "league.team" and row["fields"]["abbreviation"] == "LAL" for row in rows)
    assert not _schema_exists("lakers")
    assert not Tenant.objects.filter(schema_name="lakers").exists()


def test_delete_through_the_api_requires_confirmation(operator_client, tenant_warriors, settings, tmp_path):
    settings.TENANT_EXPORT_DIR = tmp_path
    refused = operator_client.delete("/api/v1/tenants/warriors/", {"confirm": "nope"}, content_type="application/json")
    assert refused.status_code == 400 and _schema_exists("warriors")

    done = operator_client.delete("/api/v1/tenants/warriors/", {"confirm": "warriors"}, content_type="application/json")

    assert done.status_code == 200 and done.json()["export"].startswith(str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 2  # the schema's data and the account's rows
    assert not _schema_exists("warriors")
