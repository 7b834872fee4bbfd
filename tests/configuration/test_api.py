"""The operator API: effective view, one key, entries written and deleted, and who may use it."""

import pytest

from configuration.conf import config
from configuration.models import ConfigChange, ConfigEntry
from tests.conftest import PUBLIC_HOST, TenantClient, make_user

pytestmark = pytest.mark.django_db


def test_the_effective_view_lists_every_key_with_its_winning_layer(operator_client, monkeypatch):
    config.set("api.page_size", 75)
    monkeypatch.setenv("COURTSIDE_CACHE__TTL_SECONDS", "15")
    config.reload()
    body = operator_client.get("/api/v1/config/").json()
    rows = {row["key"]: row for row in body["keys"]}
    assert (rows["api.page_size"]["value"], rows["api.page_size"]["source"]) == (75, "database")
    assert (rows["cache.ttl_seconds"]["value"], rows["cache.ttl_seconds"]["source"]) == (15, "environment")
    assert (rows["reports.max_rows"]["source"], body["tenant"], body["errors"]) == ("default", None, [])


def test_one_key_explains_every_layer(operator_client, tenant_lakers):
    config.set("reports.max_rows", 10)
    config.set("reports.max_rows", 20, tenant=tenant_lakers)
    body = operator_client.get("/api/v1/config/keys/reports.max_rows/?tenant=lakers").json()
    assert (body["value"], body["source"]) == (20, "tenant")
    assert [(row["layer"], row["value"]) for row in body["layers"]] == [
        ("default", 10000), ("database", 10), ("tenant", 20)]
    missing = operator_client.get("/api/v1/config/keys/no.such.key/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_writing_a_tenant_entry_then_deleting_it(operator_client, tenant_lakers):
    created = operator_client.post("/api/v1/config/entries/",
                                   {"key": "scoring.model", "value": "new", "tenant": "lakers"},
                                   content_type="application/json")
    assert created.status_code == 201
    assert (created.json()["tenant"], created.json()["layer"], created.json()["version"]) == ("lakers", "tenant", 1)
    updated = operator_client.post("/api/v1/config/entries/",
                                   {"key": "scoring.model", "value": "classic", "tenant": "lakers"},
                                   content_type="application/json")
    assert (updated.status_code, updated.json()["version"]) == (200, 2)
    entry_id = created.json()["id"]
    assert operator_client.delete(f"/api/v1/config/entries/{entry_id}/").status_code == 204
    assert not ConfigEntry.objects.exists()
    assert ConfigChange.objects.filter(key="scoring.model", action="delete", source="api").count() == 1


def test_an_unknown_tenant_or_the_public_schema_is_refused(operator_client):
    for tenant in ("nobody", "public"):
        response = operator_client.post("/api/v1/config/entries/", {"key": "api.page_size", "value": 5,
                                                                    "tenant": tenant},
                                        content_type="application/json")
        assert response.status_code == 400 and response.json()["error"]["detail"]["tenant"]
    assert not ConfigEntry.objects.exists()


def test_the_operator_api_needs_a_staff_user(public_tenant):
    anonymous = TenantClient(PUBLIC_HOST)
    assert anonymous.get("/api/v1/config/").status_code in (401, 403)
    client = TenantClient(PUBLIC_HOST)
    client.login_user(make_user("public", username="viewer", staff=False), "public")
    response = client.post("/api/v1/config/entries/", {"key": "api.page_size", "value": 5},
                           content_type="application/json")
    assert response.status_code == 403 and response.json()["error"]["code"] == "permission_denied"
    assert not ConfigEntry.objects.exists()


def test_a_tenant_user_who_is_not_staff_cannot_write_overrides(tenant_lakers, tenant_client_factory):
    client = TenantClient("lakers.localhost")
    client.login_user(make_user("lakers", username="fan", staff=False), "lakers")
    assert client.get("/api/v1/config/").status_code == 200
    response = client.post("/api/v1/config/overrides/", {"key": "branding.accent_color", "value": "#000000"},
                           content_type="application/json")
    assert response.status_code == 403
    assert not ConfigEntry.objects.exists()
