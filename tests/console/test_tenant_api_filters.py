"""`GET /api/v1/tenants/?plan=&status=`: the operator API filters the tenant list, and says so when it cannot."""

from __future__ import annotations

import pytest

from tenants import services

pytestmark = pytest.mark.django_db


def schemas(response) -> set[str]:
    return {row["schema_name"] for row in response.json()["results"]}


def test_plan_filters_the_tenant_list(operator_client, lakers_free, warriors_starter):
    assert schemas(operator_client.get("/api/v1/tenants/?plan=FREE")) == {"lakers"}
    assert schemas(operator_client.get("/api/v1/tenants/?plan=starter")) == {"warriors"}
    assert schemas(operator_client.get("/api/v1/tenants/?plan=ENTERPRISE")) == set()
    assert schemas(operator_client.get("/api/v1/tenants/")) >= {"lakers", "warriors"}


def test_status_filters_the_tenant_list(operator_client, lakers_free, warriors_starter):
    services.tenant_suspend(tenant=warriors_starter)
    assert schemas(operator_client.get("/api/v1/tenants/?status=suspended")) == {"warriors"}
    assert "warriors" not in schemas(operator_client.get("/api/v1/tenants/?status=active"))
    assert schemas(operator_client.get("/api/v1/tenants/?plan=FREE&status=suspended")) == set()


@pytest.mark.parametrize("query", ["plan=GOLD", "status=sleeping"])
def test_an_unknown_plan_or_status_is_a_400_in_the_error_shape(operator_client, lakers_free, query):
    response = operator_client.get(f"/api/v1/tenants/?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_filter" and query.split("=")[0] in error["detail"]
