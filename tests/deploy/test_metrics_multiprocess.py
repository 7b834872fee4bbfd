"""/metrics under gunicorn with two workers: every scrape, whichever worker answers, counts every worker's requests."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.stack import HTTPS, METRICS_TOKEN


def _scrape(server, token=METRICS_TOKEN):
    headers = {**HTTPS, "Host": "localhost", **({"Authorization": f"Bearer {token}"} if token else {})}
    return httpx.get(f"{server.url}/metrics", headers=headers, timeout=30)


def _count(text, **labels):
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == "courtside_http_requests_total"
               and all(sample.labels.get(k) == v for k, v in labels.items()))


@pytest.mark.django_db(transaction=True)
def test_scrapes_sum_every_worker(production_server, tenant_lakers):
    from tenants import services

    assert _scrape(production_server, token=None).status_code == 401
    assert _scrape(production_server, token="wrong").status_code == 401
    _, key = services.api_key_create(tenant=tenant_lakers, name="multiprocess")
    before = _count(_scrape(production_server).text, route="api/v1/teams/", status="200")
    for _ in range(24):  # a new connection each: gunicorn's workers share them out
        response = httpx.get(f"{production_server.url}/api/v1/teams/", timeout=30,
                             headers={**HTTPS, "Host": "lakers.localhost", "Authorization": f"Api-Key {key}"})
        assert response.status_code == 200
    counts = set()
    for _ in range(8):
        scrape = _scrape(production_server)
        assert scrape.status_code == 200
        counts.add(_count(scrape.text, route="api/v1/teams/", status="200") - before)
        families = {family.name for family in text_string_to_metric_families(scrape.text)}
        assert {"courtside_tenant_api_calls", "courtside_tenant_quota_headroom_calls",
                "courtside_task_queue_depth"} <= families
    assert counts == {24}
