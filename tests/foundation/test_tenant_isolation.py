"""One tenant's data and sessions mean nothing on another tenant's host."""

import httpx
import pytest
from django.db import connection
from django_tenants.utils import schema_context

from tenants import services
from tenants.models import Tenant
from tests.conftest import TenantClient, make_user, tenant_host
from tests.foundation import factories


def _lakers_roster():
    with schema_context("lakers"):
        lal = factories.team("LAL")
        factories.player("LeBron James", lal)
        factories.player("Austin Reaves", lal)


def test_creating_a_tenant_creates_its_schema_with_the_tenant_tables(public_tenant):
    tenant = services.tenant_create(name="Boston Celtics", schema_name="celtics")

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('celtics.league_player'), to_regclass('celtics.auth_user')")
        assert all(cursor.fetchone())
    assert tenant.domains.get().domain == "celtics.localhost"


def test_lakers_players_are_invisible_through_the_warriors_api(lakers_client, warriors_client):
    _lakers_roster()

    lakers = lakers_client.get("/api/v1/players/").json()
    warriors = warriors_client.get("/api/v1/players/").json()

    assert {p["full_name"] for p in lakers["results"]} == {"LeBron James", "Austin Reaves"}
    assert warriors["count"] == 0
    with schema_context("lakers"):
        from league.models import Player

        lebron_id = Player.objects.get(full_name="LeBron James").pk
    assert warriors_client.get(f"/api/v1/players/{lebron_id}/").status_code == 404


def test_lakers_players_are_invisible_in_the_warriors_admin(lakers_client, warriors_client):
    _lakers_roster()

    assert "LeBron James" in lakers_client.get("/admin/league/player/").content.decode()
    page = warriors_client.get("/admin/league/player/")
    assert page.status_code == 200
    assert "LeBron James" not in page.content.decode()
    assert "0 players" in page.content.decode()


def test_a_lakers_session_cookie_does_not_authenticate_on_the_warriors_host(lakers_client, tenant_warriors):
    assert lakers_client.get("/api/v1/teams/").status_code == 200
    session_cookie = lakers_client.cookies["sessionid"].value

    stolen = TenantClient(tenant_host("warriors"))
    stolen.cookies["sessionid"] = session_cookie

    assert stolen.get("/api/v1/teams/").status_code == 401
    assert stolen.get("/admin/").status_code == 302  # to the login page


def test_a_lakers_superuser_cannot_log_into_the_warriors_admin(tenant_lakers, tenant_warriors):
    make_user("lakers", username="magic", superuser=True, password="showtime-1980")
    client = TenantClient(tenant_host("warriors"))

    response = client.post("/admin/login/", {"username": "magic", "password": "showtime-1980"})

    assert response.status_code == 200
    assert "Please enter the correct username and password" in response.content.decode()


def test_operator_models_are_not_reachable_from_a_tenant_admin(lakers_client):
    assert lakers_client.get("/admin/tenants/tenant/").status_code == 404
    assert lakers_client.get("/api/v1/tenants/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_real_http_serves_each_tenant_its_own_data(live_tenant_url):
    _lakers_roster()
    make_user("lakers", username="api", password="secret-pass-1", staff=False)
    make_user("warriors", username="api", password="secret-pass-1", staff=False)
    base_url, lakers_headers = live_tenant_url("lakers")
    _, warriors_headers = live_tenant_url("warriors")

    with httpx.Client(base_url=base_url, auth=("api", "secret-pass-1"), timeout=10) as http:
        lakers = http.get("/api/v1/players/", headers=lakers_headers)
        warriors = http.get("/api/v1/players/", headers=warriors_headers)
        unknown = http.get("/api/v1/players/", headers={"Host": "nobody.localhost"})

    assert lakers.status_code == 200 and lakers.json()["count"] == 2, lakers.text
    assert warriors.status_code == 200 and warriors.json()["count"] == 0
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "unknown_host"
    assert Tenant.objects.filter(schema_name="lakers").exists()
