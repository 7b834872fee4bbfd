"""/metrics: operator-only Prometheus text, parsed with prometheus-client's own parser."""

from __future__ import annotations

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TenantClient


def _scrape(client) -> dict[str, list]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family.samples for family in text_string_to_metric_families(response.content.decode())}


def _value(families, name, sample_name=None, **labels) -> float:
    return sum(s.value for s in families.get(name, []) if (sample_name is None or s.name == sample_name)
               and all(s.labels.get(k) == v for k, v in labels.items()))


def test_metrics_are_refused_without_an_operator_or_the_token(db, settings, lakers_client):
    settings.METRICS_TOKEN = "scrape-token-for-the-test-only-0123456789"
    anonymous = Client(HTTP_HOST="localhost").get("/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_authenticated"
    wrong = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION="Bearer not-the-token").get("/metrics")
    assert wrong.status_code == 401
    # A tenant's admin is not an operator, and a tenant site has no /metrics.
    assert lakers_client.get("/metrics").status_code == 404
    token = Client(HTTP_HOST="localhost", HTTP_AUTHORIZATION=f"Bearer {settings.METRICS_TOKEN}").get("/metrics")
    assert token.status_code == 200


def test_an_operator_scrapes_every_figure(db, operator_client, tenant_lakers):
    from tenants import services

    _, key = services.api_key_create(tenant=tenant_lakers, name="metrics")
    api = TenantClient("lakers.localhost", HTTP_AUTHORIZATION=f"Api-Key {key}")
    before = _scrape(operator_client)
    for _ in range(3):
        assert api.get("/api/v1/players/").status_code == 200
    families = _scrape(operator_client)

    def delta(name, **labels):
        return _value(families, name, **labels) - _value(before, name, **labels)

    assert delta("courtside_http_requests", sample_name="courtside_http_requests_total", site="tenant",
                 route="api/v1/players/", method="GET", status="200") == 3
    assert delta("courtside_http_request_duration_seconds", sample_name="courtside_http_request_duration_seconds_count",
                 route="api/v1/players/") == 3
    assert delta("courtside_tenant_api_calls", tenant="lakers", outcome="admitted") == 3
    headroom = _value(families, "courtside_tenant_quota_headroom_calls", tenant="lakers")
    assert 0 < headroom == tenant_lakers.plan.api_calls_per_day - 3
    for name in ("courtside_task_queue_depth", "courtside_task_runs", "courtside_registry_instances",
                 "courtside_configuration_reload_lag_seconds", "courtside_migrations_pending",
                 "courtside_schemas_drifted", "courtside_task_run_latency_seconds"):
        assert name in families, name
    assert {s.labels["priority"] for s in families["courtside_task_queue_depth"]} == {"Low", "Normal", "High",
                                                                                       "Critical"}
    assert _value(families, "courtside_migrations_pending") == 0


@pytest.mark.parametrize(("outcome", "prepare"), [("daily_quota", "exhaust"), ("suspended", "suspend")])
def test_refused_calls_are_counted_by_outcome(db, operator_client, tenant_lakers, outcome, prepare):
    from django.utils import timezone

    from tenants import services
    from tenants.models import UsageDay

    _, key = services.api_key_create(tenant=tenant_lakers, name="metrics")
    if prepare == "exhaust":
        UsageDay.objects.update_or_create(tenant=tenant_lakers, date=timezone.now().date(),
                                          defaults={"api_calls": tenant_lakers.plan.api_calls_per_day})
    else:
        tenant_lakers.status = tenant_lakers.Status.SUSPENDED
        tenant_lakers.save(update_fields=["status"])
    before = _value(_scrape(operator_client), "courtside_tenant_api_calls", tenant="lakers", outcome=outcome)
    refused = TenantClient("lakers.localhost", HTTP_AUTHORIZATION=f"Api-Key {key}").get("/api/v1/players/")
    assert refused.status_code in (403, 429), refused.content
    after = _value(_scrape(operator_client), "courtside_tenant_api_calls", tenant="lakers", outcome=outcome)
    assert after - before == 1
