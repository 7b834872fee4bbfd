"""Every API path answers exactly the methods its OpenAPI document names; any other gets a JSON 405.

Issue 13.2: the tenant sub-resource views inherited the detail view's `delete`, so
`DELETE /api/v1/tenants/<schema>/usage/?confirm=<schema>` deleted the whole tenant.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tenants.models import Tenant
from tests.api.openapi import HTTP_METHODS, documented_methods, fill_path
from tests.conftest import PUBLIC_HOST, TenantClient, make_user, tenant_host

# Values for path parameters naming nothing, so a served method answers 404 or 400 and nothing is changed.
ABSENT = {"schema_name": "nosuchtenant", "id": 999999, "run_id": "00000000-0000-0000-0000-000000000000",
          "key": "no.such.key", "service_id": "no-such-service", "name": "no-such-service", "month": "2026-11"}


def assert_method_not_allowed(response):
    assert response.status_code == 405, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    if response.request["REQUEST_METHOD"] == "HEAD":
        return  # no body to a HEAD
    error = response.json()["error"]
    assert set(error) == {"code", "message", "detail", "request_id"} and error["code"] == "method_not_allowed"


def _site_client(site: str) -> TenantClient:
    schema_name = "public" if site == "operator" else "lakers"
    client = TenantClient(PUBLIC_HOST if site == "operator" else tenant_host(schema_name))
    client.raise_request_exception = False  # a 500 here is still "served"; other tests hunt server errors
    client.login_user(make_user(schema_name, username=f"{site}-walker", superuser=True), schema_name)
    return client


@pytest.mark.parametrize("site", ["operator", "tenant"])
def test_every_path_serves_exactly_the_methods_its_document_names(site, tenant_lakers, settings, tmp_path):
    settings.TENANT_EXPORT_DIR = tmp_path
    client = _site_client(site)
    mismatches = {}
    for template, documented in documented_methods(site).items():
        path = fill_path(template, ABSENT)
        expected = documented | ({"head"} if "get" in documented else set())
        served = set()
        for method in HTTP_METHODS:
            response = client.generic(method.upper(), path, b"{}", content_type="application/json")
            if response.status_code == 405:
                assert_method_not_allowed(response)
            else:
                served.add(method)
        if served != expected:
            mismatches[template] = {"documented": sorted(expected), "served": sorted(served)}
    assert mismatches == {}
    assert Tenant.objects.filter(schema_name="lakers").exists()


@pytest.mark.parametrize("sub_resource", ["usage", "plan", "suspend", "reactivate"])
def test_a_delete_on_a_tenant_sub_resource_never_deletes_the_tenant(sub_resource, operator_client, tenant_lakers,
                                                                     settings, tmp_path):
    settings.TENANT_EXPORT_DIR = tmp_path
    response = operator_client.delete(f"/api/v1/tenants/lakers/{sub_resource}/?confirm=lakers")

    assert_method_not_allowed(response)
    assert Tenant.objects.filter(schema_name="lakers").exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = 'lakers'")
        assert cursor.fetchone() is not None
    assert not list(tmp_path.iterdir()), "nothing was exported either"


@pytest.mark.parametrize("path", ["/api/v1/tenants/lakers/suspend/", "/api/v1/tenants/lakers/reactivate/"])
def test_an_action_endpoint_answers_get_with_405(path, operator_client, tenant_lakers):
    assert_method_not_allowed(operator_client.get(path))


@pytest.mark.parametrize("client_fixture", ["operator_client", "lakers_client"])
def test_a_task_cancel_answers_get_with_405(client_fixture, request, tenant_lakers):
    client = request.getfixturevalue(client_fixture)
    assert_method_not_allowed(client.get("/api/v1/tasks/runs/00000000-0000-0000-0000-000000000000/cancel/"))


def test_the_operator_documents_only_the_methods_of_each_tenant_endpoint():
    methods = documented_methods("operator")
    assert {path: methods[path] for path in methods if path.startswith("/api/v1/tenants/")} == {
        "/api/v1/tenants/": {"get", "post"},
        "/api/v1/tenants/{schema_name}/": {"get", "delete"},
        "/api/v1/tenants/{schema_name}/plan/": {"get", "post"},
        "/api/v1/tenants/{schema_name}/suspend/": {"post"},
        "/api/v1/tenants/{schema_name}/reactivate/": {"post"},
        "/api/v1/tenants/{schema_name}/usage/": {"get"},
        "/api/v1/tenants/{schema_name}/statements/{month}/": {"get"},
        "/api/v1/tenants/{schema_name}/statements/{month}/statement.csv": {"get"},
    }
