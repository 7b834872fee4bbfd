"""What one task submission costs a tenant, exactly (issue 19.3 (a)): the contract the rehearsal checks.

tasks/README.md ("A tenant's share of the cluster"): each run is one call
against the daily quota, plus its request's own. So one submission costs 2;
with one call left the request is admitted and its run refused (429
daily_quota_exceeded, detail.calls, nothing queued): 1; a request the quota
refuses costs nothing. The rehearsal's old check counted one call per 2xx and
found 84 answered against 120 admitted: the check, not the product, was wrong.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from tasks.models import TaskRun
from tenants.models import UsageDay

RUNS = "/api/v1/tasks/runs/"


def _calls(tenant) -> int:
    return UsageDay.objects.get(tenant=tenant, date=timezone.now().date()).api_calls


@pytest.mark.django_db
def test_a_submission_costs_its_request_and_its_run_and_a_refused_one_its_request_only(
        lakers_client, tenant_lakers, django_capture_on_commit_callbacks):
    tenant_lakers.plan.api_calls_per_day = 4
    tenant_lakers.plan.save()
    submit = {"name": "system.noop"}
    assert lakers_client.get("/api/v1/teams/").status_code == 200
    assert _calls(tenant_lakers) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert lakers_client.post(RUNS, submit, content_type="application/json").status_code == 201
    assert _calls(tenant_lakers) == 3  # the request and its run

    with django_capture_on_commit_callbacks(execute=True):
        refused = lakers_client.post(RUNS, submit, content_type="application/json")  # one call left
    assert refused.status_code == 429
    body = refused.json()
    error = body.get("error", body)
    assert error["code"] == "daily_quota_exceeded" and error["detail"]["calls"] == 1
    assert _calls(tenant_lakers) == 4  # its request's own: the quota, never more
    assert TaskRun.objects.filter(tenant=tenant_lakers).count() == 1

    assert lakers_client.get("/api/v1/teams/").status_code == 429
    assert lakers_client.post(RUNS, submit, content_type="application/json").status_code == 429
    assert _calls(tenant_lakers) == 4  # refused requests cost nothing
