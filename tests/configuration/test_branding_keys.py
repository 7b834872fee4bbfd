"""One colour source (the tenant's branding) and a welcome message that greets the tenant's admin."""

from __future__ import annotations

from configuration import config
from tenants import services
from tenants.models import Tenant

USES_EXAMPLE_KEYS = False  # the product's keys only (see example_keys.py)


def test_the_tenant_branding_colour_is_the_only_colour_source(lakers_client, tenant_lakers):
    refused = lakers_client.post("/api/v1/config/overrides/", {"key": "branding.accent_color", "value": "#000000"},
                                 content_type="application/json")
    assert refused.status_code == 400
    assert "branding" in refused.json()["error"]["message"]
    assert "accent_color" not in config.get("branding", tenant="lakers")

    services.tenant_branding_update(tenant=Tenant.objects.get(pk=tenant_lakers.pk), display_name="Showtime",
                                    primary_color="#552583", support_email="")
    admin_page = lakers_client.get("/admin/").content.decode()
    docs_page = lakers_client.get("/api/docs/").content.decode()
    assert "--brand-primary: #552583;" in admin_page and "--brand-primary: #552583;" in docs_page


def test_the_welcome_message_greets_each_tenants_admin(lakers_client, warriors_client):
    response = lakers_client.post("/api/v1/config/overrides/",
                                  {"key": "branding.welcome_message", "value": "Showtime, coach"},
                                  content_type="application/json")
    assert response.status_code == 200

    lakers_index = lakers_client.get("/admin/").content.decode()
    warriors_index = warriors_client.get("/admin/").content.decode()
    assert "<h1>Showtime, coach</h1>" in lakers_index
    assert "<h1>Welcome to Courtside</h1>" in warriors_index and "Showtime" not in warriors_index
