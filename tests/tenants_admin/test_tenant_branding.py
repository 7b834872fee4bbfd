"""White-label: each tenant's admin and API docs carry its own brand, and no other tenant's."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from tenants.models import Domain, Tenant
from tests.conftest import TenantClient, make_user, tenant_host

from .conftest import put_on_plan

GIB = 1024**3

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def html(response) -> str:
    return response.content.decode()


@pytest.fixture
def branded_lakers(tenant_lakers):
    Tenant.objects.filter(pk=tenant_lakers.pk).update(
        display_name="Showtime Analytics", primary_color="#552583", support_email="help@showtime.test"
    )
    tenant_lakers.refresh_from_db()
    return tenant_lakers


def test_the_tenant_admin_shows_its_brand_colour_and_support_email(branded_lakers, lakers_client):
    page = html(lakers_client.get("/admin/"))

    assert '<span class="brand-name">Showtime Analytics · Courtside</span>' in page
    assert "--brand-primary: #552583;" in page
    assert "--header-bg: var(--brand-primary);" in page
    assert 'href="mailto:help@showtime.test"' in page
    assert "Courtside operator" not in page


def test_another_tenants_admin_shows_its_own_brand_not_the_first_ones(branded_lakers, warriors_client):
    page = html(warriors_client.get("/admin/"))

    assert '<span class="brand-name">Golden State Warriors · Courtside</span>' in page
    assert "--brand-primary: #1d428a;" in page
    for lakers_brand in ("Showtime", "#552583", "help@showtime.test"):
        assert lakers_brand not in page


def test_the_login_page_is_branded_before_anyone_logs_in(branded_lakers, tenant_client_factory):
    anonymous = tenant_client_factory("lakers", logged_in=False)
    page = html(anonymous.get("/admin/login/"))
    assert "Showtime Analytics" in page and "#552583" in page


def test_the_operator_admin_stays_courtside_operator(branded_lakers, operator_client):
    page = html(operator_client.get("/admin/"))
    assert "Courtside operator" in page
    assert "--brand-primary" not in page and "Showtime" not in page


def test_a_logo_uploaded_by_the_operator_is_stored_and_shown_under_the_tenants_own_media(
    branded_lakers, operator_client, lakers_client, warriors_client
):
    domain = Domain.objects.get(tenant=branded_lakers)
    logo = None
    try:
        response = operator_client.post(f"/admin/tenants/tenant/{branded_lakers.pk}/change/", {
            "name": "Los Angeles Lakers", "display_name": "Showtime Analytics", "primary_color": "#552583",
            "support_email": "help@showtime.test", "logo": SimpleUploadedFile("showtime.png", PNG, "image/png"),
            "domains-TOTAL_FORMS": "1", "domains-INITIAL_FORMS": "1", "domains-MIN_NUM_FORMS": "0",
            "domains-MAX_NUM_FORMS": "1000", "domains-0-id": domain.pk, "domains-0-tenant": branded_lakers.pk,
            "domains-0-domain": domain.domain, "domains-0-is_primary": "on",
        })
        assert response.status_code == 302
        logo = Tenant.objects.get(pk=branded_lakers.pk).logo
        with schema_context("lakers"):
            # Ask the storage: django-tenants' storage caches MEDIA_ROOT, which another test may have changed.
            stored = Path(default_storage.path(logo.name))
        assert stored.read_bytes() == PNG
        assert stored.parent.parent.name == "lakers"

        lakers_page = html(lakers_client.get("/admin/"))
        assert f'<img class="brand-logo" src="/media/lakers/{logo.name}"' in lakers_page
        assert "<img class=\"brand-logo\"" not in html(warriors_client.get("/admin/"))
    finally:
        if logo:
            with schema_context("lakers"):
                default_storage.delete(logo.name)


def test_a_logo_that_is_not_an_image_is_a_form_error(branded_lakers, operator_client):
    domain = Domain.objects.get(tenant=branded_lakers)
    response = operator_client.post(f"/admin/tenants/tenant/{branded_lakers.pk}/change/", {
        "name": "Los Angeles Lakers", "primary_color": "#552583",
        "logo": SimpleUploadedFile("payload.html", b"<script>", "text/html"),
        "domains-TOTAL_FORMS": "1", "domains-INITIAL_FORMS": "1", "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000", "domains-0-id": domain.pk, "domains-0-tenant": branded_lakers.pk,
        "domains-0-domain": domain.domain, "domains-0-is_primary": "on",
    })
    assert response.status_code == 200
    assert "The logo must be a PNG or JPEG file." in html(response)
    assert not Tenant.objects.get(pk=branded_lakers.pk).logo


def test_an_over_storage_tenant_gets_the_read_only_banner(tenant_lakers, lakers_client, warriors_client):
    put_on_plan(tenant_lakers, "FREE")
    Tenant.objects.filter(pk=tenant_lakers.pk).update(storage_bytes=2 * GIB)

    page = html(lakers_client.get("/admin/"))

    assert "Read-only: Los Angeles Lakers is over the storage quota of its plan" in page
    assert "Read-only" not in html(warriors_client.get("/admin/"))


def test_the_api_docs_page_carries_the_tenants_brand(branded_lakers, lakers_client, warriors_client):
    lakers_docs = html(lakers_client.get("/api/docs/"))
    warriors_docs = html(warriors_client.get("/api/docs/"))

    assert '<span class="brand-name">Showtime Analytics API</span>' in lakers_docs
    assert "--brand-primary: #552583;" in lakers_docs
    assert 'id="swagger-ui"' in lakers_docs  # drf-spectacular's own page is still underneath
    assert '<span class="brand-name">Golden State Warriors API</span>' in warriors_docs
    assert "Showtime" not in warriors_docs and "#552583" not in warriors_docs


def test_the_operator_api_docs_page_is_not_tenant_branded(branded_lakers, operator_client):
    page = html(operator_client.get("/api/docs/"))
    assert 'id="swagger-ui"' in page
    assert "courtside-brand-bar" not in page and "Showtime" not in page


def test_a_tenant_superuser_brands_its_own_admin_and_no_other_tenants(
        branded_lakers, tenant_warriors, lakers_client, warriors_client):
    page = html(lakers_client.get("/admin/"))
    assert 'href="/admin/branding/"' in page  # the header links the page for the tenant's superusers
    assert "Showtime Analytics" in html(lakers_client.get("/admin/branding/"))
    before_warriors = Tenant.objects.filter(pk=tenant_warriors.pk).values(
        "display_name", "primary_color", "support_email").get()
    logo = None
    try:
        response = lakers_client.post("/admin/branding/", {
            "display_name": "Lake Show", "primary_color": "#fdb927", "support_email": "ops@lakeshow.test",
            "logo": SimpleUploadedFile("lakeshow.png", PNG, "image/png"),
        })
        assert response.status_code == 302
        lakers = Tenant.objects.get(pk=branded_lakers.pk)
        logo = lakers.logo
        assert (lakers.display_name, lakers.primary_color, lakers.support_email) == (
            "Lake Show", "#fdb927", "ops@lakeshow.test")
        assert lakers.name == branded_lakers.name and lakers.plan_id == branded_lakers.plan_id
        with schema_context("lakers"):
            assert Path(default_storage.path(logo.name)).parent.parent.name == "lakers"
        page = html(lakers_client.get("/admin/"))
        assert "Lake Show" in page and "--brand-primary: #fdb927" in page
        assert "Lake Show" not in html(warriors_client.get("/admin/"))
        assert Tenant.objects.filter(pk=tenant_warriors.pk).values(
            "display_name", "primary_color", "support_email").get() == before_warriors
    finally:
        if logo:
            with schema_context("lakers"):
                default_storage.delete(logo.name)


@pytest.mark.parametrize("field, value, message", [
    ("primary_color", "purple", "#"),
    ("support_email", "not-an-address", "valid email"),
    ("logo", SimpleUploadedFile("payload.svg", b"<svg onload=alert(1)>", "image/svg+xml"), "PNG or JPEG"),
])
def test_bad_branding_input_is_a_form_error_and_changes_nothing(branded_lakers, lakers_client, field, value, message):
    data = {"display_name": "Changed", "primary_color": "#000000", "support_email": "a@b.test", field: value}
    response = lakers_client.post("/admin/branding/", data)
    assert response.status_code == 200 and message in html(response)
    lakers = Tenant.objects.get(pk=branded_lakers.pk)
    assert (lakers.display_name, lakers.primary_color, str(lakers.logo)) == ("Showtime Analytics", "#552583", "")


def test_only_a_tenant_superuser_may_change_branding_and_never_while_suspended(
        branded_lakers, tenant_client_factory):
    staff = tenant_client_factory("lakers", superuser=False)
    assert staff.get("/admin/branding/").status_code == 403
    assert 'href="/admin/branding/"' not in html(staff.get("/admin/"))

    Tenant.objects.filter(pk=branded_lakers.pk).update(status=Tenant.Status.SUSPENDED)
    admin = TenantClient(tenant_host("lakers"))
    admin.login_user(make_user("lakers", username="boss", superuser=True), "lakers")
    page = html(admin.get("/admin/branding/"))
    assert "Read-only" in page and 'value="Save"' not in page and "disabled" in page
    response = admin.post("/admin/branding/", {"display_name": "Sneaky", "primary_color": "#000000"})
    assert response.status_code in (200, 403)  # the suspended tenant's writes are refused before the view
    assert Tenant.objects.get(pk=branded_lakers.pk).display_name == "Showtime Analytics"


def test_the_operator_site_has_no_tenant_branding_page(operator_client):
    assert operator_client.get("/admin/branding/").status_code == 404
