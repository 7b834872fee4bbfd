"""The operator's OpenAPI document and docs are for operators only; a tenant's docs are public, never metered."""

from __future__ import annotations

import pytest

from tenants import metering
from tests.conftest import PUBLIC_HOST, TenantClient, make_user, tenant_host


@pytest.mark.parametrize("path", ["/api/schema/", "/api/schema/?format=json"])
def test_an_anonymous_visitor_gets_no_operator_openapi_document(path, public_tenant):
    response = TenantClient(PUBLIC_HOST).get(path)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert b"/api/v1/tenants/" not in response.content


def test_a_public_user_who_is_not_staff_gets_no_operator_openapi_document(public_tenant):
    client = TenantClient(PUBLIC_HOST)
    client.login_user(make_user("public", username="not-staff", staff=False), "public")
    response = client.get("/api/schema/")
    assert response.status_code == 403 and b"/api/v1/tenants/" not in response.content


def test_an_anonymous_visitor_of_the_operator_docs_is_sent_to_the_login(public_tenant):
    response = TenantClient(PUBLIC_HOST).get("/api/docs/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/") and "next=/api/docs/" in response["Location"]


def test_an_operator_gets_the_operator_openapi_document_and_docs(operator_client):
    assert b"/api/v1/tenants/" in operator_client.get("/api/schema/").content
    docs = operator_client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content


def test_a_tenants_openapi_document_and_docs_are_public_and_never_metered(lakers_client, tenant_lakers):
    anonymous = TenantClient(tenant_host("lakers"))
    before = metering.calls_today(tenant=tenant_lakers)
    for client in (anonymous, lakers_client):
        for _ in range(3):
            schema = client.get("/api/schema/")
            assert schema.status_code == 200 and b"/api/v1/players/" in schema.content
            assert b"/api/v1/tenants/" not in schema.content
            assert client.get("/api/docs/").status_code == 200
    assert metering.calls_today(tenant=tenant_lakers) == before
    # The API itself is still metered.
    lakers_client.get("/api/v1/teams/")
    assert metering.calls_today(tenant=tenant_lakers) == before + 1
