"""A tenant admin's API keys: its own only, created through the service (shown once), revoked, never another's."""

from __future__ import annotations

import re

from tenants import services
from tenants.models import ApiKey, Tenant

KEYS = "/admin/tenants/apikey/"


def html(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def test_a_created_key_is_shown_once_and_works_on_its_own_tenant_only(lakers_client, tenant_lakers, tenant_warriors):
    created = lakers_client.post(KEYS + "add/", {"name": "scouting dashboard", "scope": "write"}, follow=True)

    (message,) = [m for m in messages_of(created) if "Copy it now" in m]
    raw_key = re.search(r"(cs_[0-9a-f]{8}\.[A-Za-z0-9_-]+)", message).group(1)
    key = ApiKey.objects.get()
    assert (key.tenant_id, key.name, key.scope, key.created_by) == (
        tenant_lakers.pk, "scouting dashboard", "write", "lakers_admin")
    assert raw_key in html(created)
    assert services.api_key_authenticate(raw_key=raw_key, tenant=tenant_lakers) == key
    assert services.api_key_authenticate(raw_key=raw_key, tenant=tenant_warriors) is None

    secret = raw_key.split(".", 1)[1]
    for later in (lakers_client.get(KEYS), lakers_client.get(f"{KEYS}{key.pk}/change/")):
        assert later.status_code == 200
        assert secret not in html(later) and key.secret_hash not in html(later)
        assert key.prefix in html(later)


def test_a_key_without_a_name_is_a_form_error(lakers_client):
    response = lakers_client.post(KEYS + "add/", {"name": " ", "scope": "read"})
    assert response.status_code == 200
    assert "This field is required." in html(response)
    assert not ApiKey.objects.exists()


def test_a_tenant_admin_lists_only_its_own_keys(lakers_client, warriors_client, tenant_lakers, tenant_warriors):
    lakers_key, _ = services.api_key_create(tenant=tenant_lakers, name="lakers feed")
    warriors_key, _ = services.api_key_create(tenant=tenant_warriors, name="warriors feed")

    lakers_page = html(lakers_client.get(KEYS))
    warriors_page = html(warriors_client.get(KEYS))

    assert lakers_key.prefix in lakers_page and warriors_key.prefix not in lakers_page
    assert warriors_key.prefix in warriors_page and lakers_key.prefix not in warriors_page
    assert "1 API key" in lakers_page


def test_a_tenant_admin_cannot_open_or_revoke_another_tenants_key_by_its_id(warriors_client, tenant_lakers):
    lakers_key, _ = services.api_key_create(tenant=tenant_lakers, name="lakers feed")

    for url in (f"{KEYS}{lakers_key.pk}/change/", f"{KEYS}{lakers_key.pk}/history/", f"{KEYS}{lakers_key.pk}/delete/"):
        response = warriors_client.get(url)
        assert response.status_code in (302, 403, 404)
        assert lakers_key.prefix not in html(response)
    revoke = warriors_client.post(KEYS, {"action": "revoke", "_selected_action": [lakers_key.pk]}, follow=True)

    assert ApiKey.objects.get(pk=lakers_key.pk).revoked_at is None
    assert lakers_key.prefix not in html(revoke)


def test_revoking_a_key_stops_it_and_keeps_it_listed(lakers_client, tenant_lakers):
    key, raw_key = services.api_key_create(tenant=tenant_lakers, name="old feed")

    response = lakers_client.post(KEYS, {"action": "revoke", "_selected_action": [key.pk]}, follow=True)

    assert "Revoked 1 key(s)." in messages_of(response)
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert services.api_key_authenticate(raw_key=raw_key, tenant=tenant_lakers) is None
    row = next(r for r in html(lakers_client.get(KEYS)).split("<tr") if key.prefix in r)
    assert "revoked" in row


def test_keys_cannot_be_edited_or_deleted_from_the_tenant_admin(lakers_client, tenant_lakers):
    key, _ = services.api_key_create(tenant=tenant_lakers, name="feed")

    change = lakers_client.post(f"{KEYS}{key.pk}/change/", {"name": "renamed", "scope": "write"})
    delete = lakers_client.post(f"{KEYS}{key.pk}/delete/", {"post": "yes"})

    assert change.status_code == 403 and delete.status_code == 403
    assert ApiKey.objects.get(pk=key.pk).name == "feed"


def test_a_suspended_tenant_cannot_create_keys(lakers_client, tenant_lakers):
    Tenant.objects.filter(pk=tenant_lakers.pk).update(status="suspended")
    response = lakers_client.post(KEYS + "add/", {"name": "feed", "scope": "read"})
    assert response.status_code == 403
    assert not ApiKey.objects.exists()


def test_the_operator_site_key_list_is_not_reachable_from_a_tenant_host_as_another_tenants(lakers_client):
    # The tenant site's key admin is its own registration; the operator's list of all keys is not mounted there.
    page = html(lakers_client.get("/admin/tenants/"))
    assert "Tenants" not in re.findall(r'<caption>\s*<a[^>]*>([^<]+)</a>', page) or "API keys" in page
    assert "/admin/tenants/tenant/" not in page and "/admin/tenants/plan/" not in page


def test_the_tenant_admin_index_offers_keys_and_models_and_the_add_page_renders(lakers_client):
    index = html(lakers_client.get("/admin/"))
    add = html(lakers_client.get(KEYS + "add/"))

    assert "/admin/tenants/apikey/" in index and "/admin/league/statmodel/" in index
    assert 'name="name"' in add and '<select name="scope"' in add
