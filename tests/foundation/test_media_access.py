"""Reports and uploads are served only to an authenticated user of their site, or through a short-lived signed link.

`/media/lakers/reports/usage-….csv` used to answer 200 to anyone on the tenant's
host, and the operator's all-tenant report at `/media/public/reports/…` to anyone
on the operator host. Logos (shown on login pages) stay public.
"""

from __future__ import annotations

import copy
import time
from urllib.parse import urlsplit

import pytest
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django_tenants.utils import schema_context

from tasks import actions as task_actions
from tasks.engine import execution
from tenants import services as tenant_services
from tests.conftest import PUBLIC_HOST, TenantClient, tenant_host

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def export_report(tenant=None):
    """Run the real export task in this process; the run row holds the file's path as its result."""
    run = task_actions.task_submit(name="tenants.export_usage_report", tenant=tenant, submitted_by="test")
    assert execution.run_execute(run_id=run.pk) == "succeeded"
    run.refresh_from_db()
    return run


def media_url(run) -> str:
    return f"/media/{run.result['path']}"


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def anonymous(schema_name: str | None) -> TenantClient:
    return TenantClient(PUBLIC_HOST if schema_name is None else tenant_host(schema_name))


def api_key(tenant) -> dict:
    _, raw = tenant_services.api_key_create(tenant=tenant, name="reports", scope="read")
    return {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}


def test_a_tenants_report_needs_a_user_or_a_key_of_that_tenant(two_tenants, lakers_client):
    lakers, _ = two_tenants
    url = media_url(export_report(lakers))
    assert url.startswith("/media/lakers/reports/usage-")
    refused = anonymous("lakers").get(url)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"
    served = lakers_client.get(url)
    assert served.status_code == 200 and body(served).startswith(b"tenant,date,")
    assert "private" in served["Cache-Control"]
    assert anonymous("lakers").get(url, **api_key(lakers)).status_code == 200


def test_the_operators_all_tenant_report_needs_an_operator(public_tenant, tenant_lakers, operator_client):
    url = media_url(export_report())
    assert url.startswith("/media/public/reports/usage-")
    assert anonymous(None).get(url).status_code == 401
    assert body(operator_client.get(url)).startswith(b"tenant,date,")


def test_uploads_other_than_logos_are_protected_and_logos_stay_public(tenant_lakers, lakers_client):
    with schema_context("lakers"):
        upload = default_storage.save("uploads/roster.csv", ContentFile(b"player,team\n"))
        logo = default_storage.save("branding/logo.png", ContentFile(b"\x89PNG lakers"))
        upload_url, logo_url = default_storage.url(upload), default_storage.url(logo)
    assert anonymous("lakers").get(upload_url).status_code == 401
    assert body(lakers_client.get(upload_url)) == b"player,team\n"
    assert body(anonymous("lakers").get(logo_url)) == b"\x89PNG lakers"  # the login page shows it
    # A path that only starts like a logo's is judged by where it really points.
    sneaky = logo_url.replace("branding/logo.png", "branding/../uploads/roster.csv")
    assert anonymous("lakers").get(sneaky).status_code in (401, 404)


def test_the_task_run_offers_a_signed_link_that_works_without_a_session(two_tenants, lakers_client):
    lakers, _ = two_tenants
    run = export_report(lakers)
    detail = lakers_client.get(f"/api/v1/tasks/runs/{run.pk}/").json()
    link = detail["download_url"]
    assert link.startswith(f"/media/{run.result['path']}?sig=")
    assert body(anonymous("lakers").get(link)).startswith(b"tenant,date,")
    listed = lakers_client.get("/api/v1/tasks/runs/").json()["results"]
    assert [r["download_url"] for r in listed if r["id"] == str(run.pk)][0].startswith("/media/lakers/")
    page = lakers_client.get(f"/admin/tasks/taskrun/{run.pk}/change/").content.decode()
    assert f"/media/{run.result['path']}?sig=" in page


def test_the_operator_admin_links_a_tenants_report_on_that_tenants_host(two_tenants, operator_client):
    lakers, _ = two_tenants
    run = export_report(lakers)
    page = operator_client.get(f"/admin/tasks/taskrun/{run.pk}/change/").content.decode()
    start = page.index("http://lakers.localhost")
    link = page[start:page.index('"', start)].replace("&amp;", "&")
    parts = urlsplit(link)
    assert parts.path == f"/media/{run.result['path']}"
    assert body(anonymous("lakers").get(f"{parts.path}?{parts.query}")).startswith(b"tenant,date,")
    detail = operator_client.get(f"/api/v1/tasks/runs/{run.pk}/").json()
    assert detail["download_url"].startswith("http://lakers.localhost")


def test_a_link_expires(tenant_lakers, lakers_client, monkeypatch, settings):
    settings.MEDIA_LINK_SECONDS = 600
    run = export_report(tenant_lakers)
    real_timestamp = signing.TimestampSigner.timestamp
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(int(time.time()) - 601))
    old_link = lakers_client.get(f"/api/v1/tasks/runs/{run.pk}/").json()["download_url"]
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", real_timestamp)
    expired = anonymous("lakers").get(old_link)
    assert expired.status_code == 403
    assert expired.json()["error"]["code"] == "link_expired"
    fresh = lakers_client.get(f"/api/v1/tasks/runs/{run.pk}/").json()["download_url"]
    assert anonymous("lakers").get(fresh).status_code == 200


def test_no_lakers_credential_or_link_opens_warriors_media(two_tenants, lakers_client, warriors_client):
    lakers, warriors = two_tenants
    lakers_run, warriors_run = export_report(lakers), export_report(warriors)
    warriors_url = media_url(warriors_run)
    assert body(warriors_client.get(warriors_url)).startswith(b"tenant,date,")

    # A lakers session on the warriors host is nobody there (sessions live in each tenant's schema).
    carried = anonymous("warriors")
    carried.cookies = copy.deepcopy(lakers_client.cookies)
    assert carried.get(warriors_url).status_code == 401
    # A lakers key on the warriors host is refused.
    assert anonymous("warriors").get(warriors_url, **api_key(lakers)).status_code == 401
    # A valid lakers link, its signature put on warriors' path: refused on either host.
    lakers_link = lakers_client.get(f"/api/v1/tasks/runs/{lakers_run.pk}/").json()["download_url"]
    signature = lakers_link.split("?", 1)[1]
    assert anonymous("warriors").get(f"{warriors_url}?{signature}").status_code == 403
    assert lakers_client.get(f"{warriors_url}?{signature}").status_code == 404  # not this host's folder
    # The lakers link itself, taken to the warriors host, serves nothing there.
    assert anonymous("warriors").get(lakers_link).status_code == 404
    # A lakers user cannot see the warriors run, so never gets a link for it.
    assert lakers_client.get(f"/api/v1/tasks/runs/{warriors_run.pk}/").status_code == 404


def test_a_forged_or_truncated_signature_is_refused(tenant_lakers, lakers_client):
    run = export_report(tenant_lakers)
    link = lakers_client.get(f"/api/v1/tasks/runs/{run.pk}/").json()["download_url"]
    for bad in (link[:-3] + "abc", link.split("?")[0] + "?sig=", link.split("?")[0] + "?sig=1:2:3"):
        response = anonymous("lakers").get(bad)
        assert response.status_code in (401, 403), bad
