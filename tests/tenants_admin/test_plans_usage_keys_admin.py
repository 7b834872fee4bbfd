"""Operator admin of plans (with totals by plan), of the usage ledger and of every tenant's API keys."""

from __future__ import annotations

import re

from tenants import services
from tenants.models import ApiKey, Plan, Tenant

from .conftest import ledger, utc_today

GIB = 1024**3


def html(response) -> str:
    return response.content.decode().replace("\xa0", " ")


def test_the_plan_list_reads_unlimited_for_empty_quotas(operator_client):
    page = html(operator_client.get("/admin/tenants/plan/"))
    enterprise = next(row for row in page.split("<tr") if "ENTERPRISE" in row)
    free = next(row for row in page.split("<tr") if ">FREE<" in row)

    assert enterprise.count("Unlimited") == 4  # calls, storage, users, models; concurrency is 200
    assert "200" in enterprise
    assert "100" in free and "1.0 GB" in free and "Unlimited" not in free


def test_a_plan_is_editable_and_an_empty_quota_means_unlimited(operator_client):
    free = Plan.objects.get(code="FREE")
    response = operator_client.post(f"/admin/tenants/plan/{free.pk}/change/", {
        "code": "FREE", "name": "Free", "api_calls_per_day": "", "storage_bytes": str(GIB), "max_users": "1",
        "max_models": "1", "max_concurrent_requests": "2", "monthly_price": "0.00",
    })
    assert response.status_code == 302
    assert Plan.objects.get(pk=free.pk).api_calls_per_day is None


def test_the_plan_list_shows_totals_by_plan_with_a_chart(operator_client, lakers_free, warriors_starter):
    Tenant.objects.filter(pk=warriors_starter.pk).update(status="suspended", storage_bytes=3 * GIB)
    Tenant.objects.filter(pk=lakers_free.pk).update(storage_bytes=GIB // 4)
    ledger(lakers_free, utc_today(), api_calls=40)
    ledger(warriors_starter, utc_today(), api_calls=2500)

    page = html(operator_client.get("/admin/tenants/plan/"))
    table = page.split('class="plan-totals"', 1)[1].split("</table>", 1)[0]
    cells = {
        row[0]: row[1:]
        for row in (re.findall(r"<t[dh]>([^<]*)</t[dh]>", tr) for tr in table.split("<tr>")[1:])
        if row
    }

    assert cells["Free"] == ["1", "1", "0", "40", "256.0 MB"]
    assert cells["Starter"] == ["1", "0", "1", "2500", "3.0 GB"]
    assert cells["Professional"] == ["0", "0", "0", "0", "0 bytes"]
    assert cells["Total"] == ["2", "1", "1", "2540", "3.2 GB"]
    assert len(re.findall(r'<svg[^>]*class="courtside-chart"', page)) == 2


def test_the_usage_ledger_is_read_only_for_the_operator(operator_client, lakers_free):
    row = ledger(lakers_free, utc_today(), api_calls=12, storage_bytes=2048)

    listing = html(operator_client.get("/admin/tenants/usageday/"))
    detail = operator_client.get(f"/admin/tenants/usageday/{row.pk}/change/")
    add = operator_client.get("/admin/tenants/usageday/add/")
    delete = operator_client.post(f"/admin/tenants/usageday/{row.pk}/delete/", {"post": "yes"})

    assert "Los Angeles Lakers" in listing and "2.0 KB" in listing
    assert detail.status_code == 200 and 'type="submit" value="Save"' not in html(detail)
    assert add.status_code == 403 and delete.status_code == 403
    assert type(row).objects.filter(pk=row.pk).exists()


def test_the_operator_sees_every_tenants_keys_read_only_and_never_the_hash(operator_client, lakers_free,
                                                                            warriors_starter):
    lakers_key, lakers_raw = services.api_key_create(tenant=lakers_free, name="scouting", scope="write")
    warriors_key, _ = services.api_key_create(tenant=warriors_starter, name="dashboard")
    services.api_key_revoke(key=warriors_key)

    listing = html(operator_client.get("/admin/tenants/apikey/"))
    detail = html(operator_client.get(f"/admin/tenants/apikey/{lakers_key.pk}/change/"))

    assert lakers_key.prefix in listing and warriors_key.prefix in listing
    for page in (listing, detail):
        assert lakers_key.secret_hash not in page and warriors_key.secret_hash not in page
        assert lakers_raw.split(".", 1)[1] not in page
    assert "Save" not in re.findall(r'type="submit" value="(\w+)"', detail)
    assert operator_client.get("/admin/tenants/apikey/add/").status_code == 403
    assert ApiKey.objects.count() == 2
