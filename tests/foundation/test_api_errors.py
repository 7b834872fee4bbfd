"""Every API error has one JSON shape: {"error": {"code", "message", "detail", "request_id"}}."""

from django_tenants.utils import schema_context

from tests.conftest import TenantClient
from tests.foundation import factories


def _assert_error_shape(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "detail", "request_id"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def test_an_unknown_host_gets_a_json_404(db):
    error = _assert_error_shape(TenantClient("nobody.localhost").get("/api/v1/teams/"), 404, "unknown_host")
    assert "nobody.localhost" in error["message"]


def test_a_bad_id_gets_a_json_404(lakers_client):
    _assert_error_shape(lakers_client.get("/api/v1/players/999999/"), 404, "not_found")


def test_an_unknown_path_gets_a_json_404(lakers_client):
    _assert_error_shape(lakers_client.get("/api/v1/no-such-thing/"), 404, "not_found")


def test_a_bad_query_parameter_gets_a_json_400_naming_it(lakers_client):
    error = _assert_error_shape(lakers_client.get("/api/v1/players/?team=abc"), 400, "invalid")
    assert "team" in error["detail"]
    error = _assert_error_shape(lakers_client.get("/api/v1/games/?season=2025"), 400, "invalid")
    assert "season" in error["detail"]


def test_an_anonymous_request_gets_a_json_401(tenant_lakers):
    _assert_error_shape(TenantClient("lakers.localhost").get("/api/v1/teams/"), 401, "not_authenticated")


def test_players_filter_by_team_and_search_by_name(lakers_client):
    with schema_context("lakers"):
        lal, bos = factories.team("LAL"), factories.team("BOS")
        factories.player("LeBron James", lal)
        factories.player("Bronny James", lal)
        factories.player("Jayson Tatum", bos)

    by_team = lakers_client.get(f"/api/v1/players/?team={bos.pk}").json()
    by_name = lakers_client.get("/api/v1/players/?search=james").json()

    assert [p["full_name"] for p in by_team["results"]] == ["Jayson Tatum"]
    assert {p["full_name"] for p in by_name["results"]} == {"LeBron James", "Bronny James"}


def test_openapi_schema_and_swagger_ui_are_served_on_both_sites(lakers_client, operator_client):
    assert b"/api/v1/players/" in lakers_client.get("/api/schema/").content
    assert b"/api/v1/tenants/" in operator_client.get("/api/schema/").content
    assert lakers_client.get("/api/docs/").status_code == 200
    assert operator_client.get("/api/docs/").status_code == 200
