"""A tenant's override is its own: invisible to other tenants through the facade, the admin and the API."""

import pytest
from django_tenants.utils import tenant_context

from configuration.conf import config
from configuration.models import ConfigEntry

# The mark (not only the fixture) so the database is open before the shared autouse fixtures run.
pytestmark = pytest.mark.django_db


def test_a_tenant_override_is_invisible_to_other_tenants(two_tenants):
    lakers, warriors = two_tenants
    config.set("scoring.weights.points", 7.5, tenant=lakers)
    assert config.get("scoring.weights.points", tenant=lakers) == 7.5
    assert config.get("scoring.weights.points", tenant=warriors) == 1.0
    assert config.get("scoring.weights.points") == 1.0
    with tenant_context(warriors):
        assert config.get("scoring.weights.points") == 1.0
        assert config.source_of("scoring.weights.points") == "default"


def test_the_tenant_api_shows_only_its_own_view(two_tenants, lakers_client, warriors_client):
    lakers, _ = two_tenants
    config.set("branding.welcome_message", "Showtime", tenant=lakers)
    config.set("cache.ttl_seconds", 77)  # an operator key: not part of a tenant's view
    lakers_view = lakers_client.get("/api/v1/config/").json()
    warriors_view = warriors_client.get("/api/v1/config/").json()
    lakers_keys = {row["key"]: row for row in lakers_view["keys"]}
    assert lakers_keys["branding.welcome_message"]["value"] == "Showtime"
    assert lakers_keys["branding.welcome_message"]["source"] == "tenant"
    assert "cache.ttl_seconds" not in lakers_keys
    assert "Showtime" not in warriors_client.get("/api/v1/config/").content.decode()
    assert {row["key"]: row["value"] for row in warriors_view["keys"]}["branding.welcome_message"] == \
        "Welcome to Courtside"
    assert warriors_client.get("/api/v1/config/overrides/").json()["results"] == []
    assert [row["key"] for row in lakers_client.get("/api/v1/config/overrides/").json()["results"]] == [
        "branding.welcome_message"]


def test_the_tenant_api_writes_only_its_own_layer_within_allowed_keys(two_tenants, warriors_client):
    lakers, warriors = two_tenants
    response = warriors_client.post("/api/v1/config/overrides/", {"key": "branding.accent_color", "value": "#1d428a"},
                                    content_type="application/json")
    assert response.status_code == 200
    assert ConfigEntry.objects.get(key="branding.accent_color").tenant == warriors
    assert config.get("branding.accent_color", tenant=lakers) == "#1d428a"  # the default, not the override row

    refused = warriors_client.post("/api/v1/config/overrides/", {"key": "cache.ttl_seconds", "value": 1},
                                   content_type="application/json")
    assert refused.status_code == 400 and "tenant_editable" in refused.json()["error"]["message"]
    assert not ConfigEntry.objects.filter(key="cache.ttl_seconds").exists()


def test_the_tenant_admin_lists_and_edits_only_its_own_overrides(two_tenants, lakers_client, warriors_client):
    lakers, warriors = two_tenants
    config.set("reports.max_rows", 111, tenant=lakers)
    config.set("reports.max_rows", 222, tenant=warriors)
    lakers_row = ConfigEntry.objects.get(tenant=lakers)

    listing = warriors_client.get("/admin/configuration/tenantoverride/").content.decode()
    # Judged by the value cells, not the page: a row's id (in its links) can be 111 too.
    assert 'field-shown_value">222<' in listing and 'field-shown_value">111<' not in listing
    assert f"/tenantoverride/{lakers_row.pk}/" not in listing
    # The Lakers' row by id, from the Warriors' admin: not found (redirect to the index), not shown.
    response = warriors_client.get(f"/admin/configuration/tenantoverride/{lakers_row.pk}/change/")
    assert response.status_code == 302
    response = warriors_client.post(f"/admin/configuration/tenantoverride/{lakers_row.pk}/change/", {"value": "5"})
    assert config.get("reports.max_rows", tenant=lakers) == 111

    response = lakers_client.post(f"/admin/configuration/tenantoverride/{lakers_row.pk}/change/", {"value": "333"})
    assert response.status_code == 302
    assert config.get("reports.max_rows", tenant=lakers) == 333
    assert config.get("reports.max_rows", tenant=warriors) == 222


def test_the_tenant_admin_adds_an_allowed_key_and_is_refused_others(two_tenants, lakers_client):
    lakers, _ = two_tenants
    response = lakers_client.post("/admin/configuration/tenantoverride/add/",
                                  {"key": "scoring.weights.assists", "value": "2.5"})
    assert response.status_code == 302
    assert config.get("scoring.weights.assists", tenant=lakers) == 2.5
    entry = ConfigEntry.objects.get(key="scoring.weights.assists")
    assert entry.tenant == lakers and entry.updated_by == "lakers:lakers_admin"

    refused = lakers_client.post("/admin/configuration/tenantoverride/add/", {"key": "api.page_size", "value": "5"})
    assert refused.status_code == 200 and "tenant_editable" in refused.content.decode()
    invalid = lakers_client.post("/admin/configuration/tenantoverride/add/",
                                 {"key": "branding.accent_color", "value": '"red"'})
    assert invalid.status_code == 200 and "(rule: pattern)" in invalid.content.decode()
    assert not ConfigEntry.objects.filter(key__in=["api.page_size", "branding.accent_color"]).exists()


def test_the_operator_api_and_admin_see_every_tenant(two_tenants, operator_client):
    lakers, warriors = two_tenants
    config.set("reports.max_rows", 111, tenant=lakers)
    config.set("reports.max_rows", 222, tenant=warriors)
    entries = operator_client.get("/api/v1/config/entries/").json()["results"]
    assert sorted((e["tenant"], e["value"]) for e in entries) == [("lakers", 111), ("warriors", 222)]
    lakers_view = operator_client.get("/api/v1/config/?tenant=lakers").json()
    assert {r["key"]: r["value"] for r in lakers_view["keys"]}["reports.max_rows"] == 111
    assert operator_client.get("/api/v1/config/?tenant=nobody").status_code == 404
    page = operator_client.get("/admin/configuration/configentry/effective/?tenant=warriors").content.decode()
    assert "222" in page and "111" not in page


def test_the_operator_api_is_not_served_on_a_tenant_domain(lakers_client):
    assert lakers_client.get("/api/v1/config/entries/").status_code == 404


def test_the_admin_pages_render_for_operator_and_tenant(lakers_client, operator_client):
    add = lakers_client.get("/admin/configuration/tenantoverride/add/")
    assert add.status_code == 200 and "Keys you may override: branding, reports, scoring" in add.content.decode()
    assert "Settings" in lakers_client.get("/admin/").content.decode()
    for url in ("/admin/", "/admin/configuration/configentry/add/", "/admin/configuration/configschema/",
                "/admin/configuration/configschema/add/"):
        assert operator_client.get(url).status_code == 200, url
    # The operator's models are not on the tenant site.
    assert lakers_client.get("/admin/configuration/configentry/").status_code == 404
