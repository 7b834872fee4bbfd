"""Schemathesis over both OpenAPI documents, against a live server over real HTTP (issue 14.11, item 5).

Each documented operation gets a few generated requests, valid and invalid
(fixed seed, so a run repeats): no answer may be a server error, an undocumented
status or content type, or a body that breaks the documented schema.
`DELETE /api/v1/tenants/{schema_name}/` is left out: it would drop a tenant.
"""

from __future__ import annotations

import base64

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from tests.api.openapi import openapi_document
from tests.conftest import make_user, tenant_host

PASSWORD = "pass-word-123"
EXAMPLES_PER_OPERATION = 4

# Operations whose failures are being fixed in code other engineers own right now (services/ registry,
# tasks/), with what schemathesis found. The lead removes an entry when its fix merges.
KNOWN_FAILURES: dict[str, str] = {}

CONFIG = {
    "seed": 20261201,
    "generation": {"max-examples": EXAMPLES_PER_OPERATION, "mode": "all", "no-shrink": True,
                   "with-security-parameters": False},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": False}, "fuzzing": {"enabled": True},
               "stateful": {"enabled": False}},
    "checks": {"enabled": False, "not_a_server_error": {"enabled": True},
               "status_code_conformance": {"enabled": True}, "content_type_conformance": {"enabled": True},
               "response_schema_conformance": {"enabled": True}},
    "request-timeout": 30,
}


def _schema(site: str):
    return schemathesis.openapi.from_dict(openapi_document(site), config=SchemathesisConfig.from_dict(CONFIG))


# Built at collection (pytest-django has set Django up by then), as /api/schema/ builds them.
operator_api = _schema("operator").exclude(method="DELETE", path="/api/v1/tenants/{schema_name}/")
tenant_api = _schema("tenant")


def _basic(username: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{PASSWORD}".encode()).decode()


@pytest.fixture
def operator_headers(transactional_db, public_tenant):
    make_user("public", username="fuzz-operator", superuser=True, password=PASSWORD)
    return {"Authorization": _basic("fuzz-operator")}


@pytest.fixture
def tenant_headers(transactional_db, live_server, tenant_lakers):
    make_user("lakers", username="fuzz-coach", superuser=True, password=PASSWORD)
    port = live_server.url.rsplit(":", 1)[1]
    return {"Authorization": _basic("fuzz-coach"), "Host": f"{tenant_host('lakers')}:{port}"}


def _call_and_validate(case, *, base_url: str, headers: dict):
    try:
        case.call_and_validate(base_url=base_url, headers=headers)
    except Exception:
        known = KNOWN_FAILURES.get(case.operation.label)
        if known:
            pytest.xfail(f"known, being fixed elsewhere: {known}")
        raise


# The users and headers are made once per operation, for all of its examples.
ONE_SETUP_PER_OPERATION = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@operator_api.parametrize()
@ONE_SETUP_PER_OPERATION
def test_the_operator_api_keeps_to_its_document(case, live_server, operator_headers):
    _call_and_validate(case, base_url=live_server.url, headers=operator_headers)


@tenant_api.parametrize()
@ONE_SETUP_PER_OPERATION
def test_the_tenant_api_keeps_to_its_document(case, live_server, tenant_headers):
    port = live_server.url.rsplit(":", 1)[1]
    _call_and_validate(case, base_url=f"http://127.0.0.1:{port}", headers=tenant_headers)
