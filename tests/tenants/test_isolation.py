"""API keys, cache values, stored files and usage rows never cross tenants."""

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django_tenants.utils import schema_context

from tenants import services
from tenants.models import ApiKey, UsageDay
from tests.conftest import TenantClient, tenant_host


def test_an_api_key_of_one_tenant_gets_401_on_another_tenants_host(two_tenants, api_key_for):
    lakers, _ = two_tenants
    headers, _ = api_key_for(lakers)

    own = TenantClient(tenant_host("lakers")).get("/api/v1/teams/", **headers)
    foreign = TenantClient(tenant_host("warriors")).get("/api/v1/teams/", **headers)

    assert own.status_code == 200
    assert foreign.status_code == 401
    assert foreign.json()["error"]["code"] == "authentication_failed"


def test_api_keys_are_stored_hashed_scoped_and_revocable(tenant_lakers):
    key, raw = services.api_key_create(tenant=tenant_lakers, name="dashboard", scope="read")
    client = TenantClient(tenant_host("lakers"))
    auth = {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}

    assert raw.split(".")[1] not in str(ApiKey.objects.filter(pk=key.pk).values().get())
    assert raw.startswith(f"cs_{key.prefix}.")
    assert client.get("/api/v1/teams/", **auth).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None
    read_only = client.post("/api/v1/models/", {"name": "m"}, content_type="application/json", **auth)
    assert read_only.status_code == 403 and "read-only" in read_only.json()["error"]["message"]

    services.api_key_revoke(key=key)
    assert client.get("/api/v1/teams/", **auth).status_code == 401
    bogus = "Api-Key cs_deadbeef.not-a-real-secret-at-all"
    assert client.get("/api/v1/teams/", HTTP_AUTHORIZATION=bogus).status_code == 401


def test_cache_values_are_per_tenant(two_tenants):
    with schema_context("lakers"):
        cache.set("coach", "JJ Redick")
    with schema_context("warriors"):
        assert cache.get("coach") is None
        cache.set("coach", "Steve Kerr")
    with schema_context("lakers"):
        assert cache.get("coach") == "JJ Redick"


def test_stored_files_are_per_tenant(two_tenants, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    with schema_context("lakers"):
        name = default_storage.save("scouting/report.txt", ContentFile(b"Lakers only"))
        assert default_storage.path(name).startswith(str(tmp_path / "lakers"))
    with schema_context("warriors"):
        assert not default_storage.exists(name)
        assert not default_storage.path(name).startswith(str(tmp_path / "lakers"))


def test_usage_rows_are_only_reachable_per_tenant_by_the_operator(two_tenants, operator_client, lakers_client,
                                                                  api_key_for):
    lakers, warriors = two_tenants
    headers, _ = api_key_for(lakers)
    TenantClient(tenant_host("lakers")).get("/api/v1/teams/", **headers)

    lakers_usage = operator_client.get("/api/v1/tenants/lakers/usage/").json()
    warriors_usage = operator_client.get("/api/v1/tenants/warriors/usage/").json()

    assert [row["api_calls"] for row in lakers_usage] == [1]
    assert warriors_usage == []
    assert UsageDay.objects.filter(tenant=warriors).count() == 0
    # A tenant host has no operator API at all.
    assert lakers_client.get("/api/v1/tenants/warriors/usage/").status_code == 404


def test_the_api_key_command_prints_a_key_once_that_works_only_on_its_host(two_tenants):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("api_key", "create", "--tenant", "lakers", "--name", "ci", "--scope", "read", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    auth = {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}

    assert TenantClient(tenant_host("lakers")).get("/api/v1/teams/", **auth).status_code == 200
    assert TenantClient(tenant_host("warriors")).get("/api/v1/teams/", **auth).status_code == 401
    listing = StringIO()
    call_command("api_key", "list", "--tenant", "lakers", stdout=listing)
    assert raw.split(".")[1] not in listing.getvalue() and "active" in listing.getvalue()
    with pytest.raises(CommandError, match="No tenant"):
        call_command("api_key", "create", "--tenant", "nobody", "--name", "x", stdout=StringIO())


def test_uploaded_files_are_served_only_on_their_tenants_host(two_tenants, lakers_client, warriors_client):
    with schema_context("lakers"):
        name = default_storage.save("branding/logo.png", ContentFile(b"\x89PNG lakers"))
        url = default_storage.url(name)
    try:
        assert url.startswith("/media/lakers/")
        assert b"".join(lakers_client.get(url).streaming_content) == b"\x89PNG lakers"
        assert warriors_client.get(url).status_code == 404
        assert warriors_client.get(url.replace("/lakers/", "/warriors/")).status_code == 404
        assert lakers_client.get("/media/lakers/../warriors/x.png").status_code in (400, 404)
    finally:
        with schema_context("lakers"):
            default_storage.delete(name)
