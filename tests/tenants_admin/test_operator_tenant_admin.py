"""The operator's tenant admin: quotas in the list, creation through the service, lifecycle actions, charts."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context

from tenants import services
from tenants.models import Domain, PlanChange, Tenant, UsageDay

from .conftest import ledger, put_on_plan, utc_today

GIB = 1024**3

CHANGELIST = "/admin/tenants/tenant/"


def html(response) -> str:
    # filesizeformat separates number and unit with a no-break space
    return response.content.decode().replace("\xa0", " ")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def schema_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


def run_action(client, action: str, tenants, **extra):
    data = {"action": action, "_selected_action": [t.pk for t in tenants], **extra}
    return client.post(CHANGELIST, data, follow=True)


# ------------------------------------------------------------------ list

def test_the_list_shows_plan_status_and_todays_calls_against_the_quota(operator_client, lakers_free,
                                                                        warriors_starter):
    ledger(lakers_free, utc_today(), api_calls=37)
    ledger(lakers_free, utc_today() - dt.timedelta(days=1), api_calls=99)  # yesterday does not count
    Tenant.objects.filter(pk=lakers_free.pk).update(storage_bytes=GIB // 2)

    page = html(operator_client.get(CHANGELIST))

    assert "Courtside operator" in page
    lakers_row = next(row for row in page.split("<tr") if "Los Angeles Lakers" in row)
    assert "Free" in lakers_row and "Active" in lakers_row
    assert "37 / 100" in lakers_row
    assert "512.0 MB / 1.0 GB" in lakers_row
    assert 'class="meter"' in lakers_row
    warriors_row = next(row for row in page.split("<tr") if "Golden State Warriors" in row)
    assert "0 / 10,000" in warriors_row
    assert "public" not in re.findall(r'field-schema_name">([^<]+)<', page)


def test_the_list_filters_by_plan_and_status(operator_client, lakers_free, warriors_starter):
    Tenant.objects.filter(pk=warriors_starter.pk).update(status=Tenant.Status.SUSPENDED)

    by_plan = html(operator_client.get(CHANGELIST, {"plan__id__exact": lakers_free.plan_id}))
    by_status = html(operator_client.get(CHANGELIST, {"status__exact": "suspended"}))

    assert "Los Angeles Lakers" in by_plan and "Golden State Warriors" not in by_plan
    assert "Golden State Warriors" in by_status and "Los Angeles Lakers" not in by_status


def test_an_unlimited_plan_reads_unlimited_without_a_bar(operator_client, tenant_lakers):
    put_on_plan(tenant_lakers, "ENTERPRISE")
    ledger(tenant_lakers, utc_today(), api_calls=5)

    row = next(r for r in html(operator_client.get(CHANGELIST)).split("<tr") if "Los Angeles Lakers" in r)

    assert "5 / Unlimited" in row
    assert 'class="meter"' not in row


def test_a_tenant_admin_cannot_reach_the_operator_tenant_list(lakers_client):
    response = lakers_client.get(CHANGELIST)
    assert response.status_code == 404


# ------------------------------------------------------------------ add

def test_the_add_form_creates_the_tenant_its_domain_plan_history_and_first_admin(operator_client):
    response = operator_client.post(CHANGELIST + "add/", {
        "name": "Boston Celtics", "schema_name": "celtics", "plan": "STARTER", "domain": "",
        "admin_email": "gm@celtics.test", "admin_password": "banner-18-green",
    }, follow=True)

    assert response.status_code == 200
    tenant = Tenant.objects.get(schema_name="celtics")
    assert tenant.plan.code == "STARTER"
    assert Domain.objects.get(tenant=tenant).domain == "celtics.localhost"
    history = PlanChange.objects.get(tenant=tenant)
    assert (history.from_plan, history.to_plan.code, history.changed_by) == (None, "STARTER", "operator")
    assert schema_exists("celtics")
    with schema_context("celtics"):
        assert get_user_model().objects.get(username="admin").check_password("banner-18-green")
    assert any("Created the tenant Boston Celtics" in m for m in messages_of(response))
    assert response.redirect_chain[-1][0] == f"{CHANGELIST}{tenant.pk}/change/"


@pytest.mark.parametrize(
    ("schema_name", "plan", "domain", "expected"),
    [
        ("lakers", "FREE", "", "already exists"),
        ("public", "FREE", "", "is a reserved name"),
        ("celtics", "GOLD", "", "Unknown plan"),
        ("celtics", "FREE", "lakers.localhost", "already serves another tenant"),
        ("celtics", "FREE", "not a host!", "is not a valid host name"),
    ],
)
def test_the_add_form_shows_the_services_refusal_as_a_form_error(operator_client, tenant_lakers, schema_name,
                                                                  plan, domain, expected):
    response = operator_client.post(CHANGELIST + "add/", {
        "name": "Boston Celtics", "schema_name": schema_name, "plan": plan, "domain": domain,
    })

    assert response.status_code == 200
    page = html(response)
    assert 'class="errorlist' in page
    assert expected in page.replace("&#x27;", "'")
    assert not Tenant.objects.filter(name="Boston Celtics").exists()
    assert not schema_exists("celtics")


def test_the_add_form_needs_a_password_with_an_admin_email(operator_client):
    response = operator_client.post(CHANGELIST + "add/", {
        "name": "Boston Celtics", "schema_name": "celtics", "plan": "FREE", "admin_email": "gm@celtics.test",
    })
    assert response.status_code == 200
    assert "The first admin user needs a password." in html(response)
    assert not Tenant.objects.filter(schema_name="celtics").exists()


# ------------------------------------------------------------------ actions

def test_suspend_and_reactivate_actions_go_through_the_service_and_report(operator_client, lakers_free):
    response = run_action(operator_client, "suspend", [lakers_free])
    assert Tenant.objects.get(pk=lakers_free.pk).status == "suspended"
    assert "Los Angeles Lakers: suspended." in messages_of(response)

    again = run_action(operator_client, "suspend", [lakers_free])
    assert "Los Angeles Lakers: Los Angeles Lakers is already suspended." in messages_of(again)

    back = run_action(operator_client, "reactivate", [lakers_free])
    assert Tenant.objects.get(pk=lakers_free.pk).status == "active"
    assert "Los Angeles Lakers: reactivated." in messages_of(back)


def test_a_suspended_tenants_admin_turns_read_only_with_a_banner(operator_client, lakers_free, lakers_client):
    run_action(operator_client, "suspend", [lakers_free])

    page = lakers_client.get("/admin/")
    write = lakers_client.post("/admin/league/team/add/", {"full_name": "x"})

    assert page.status_code == 200
    assert "Read-only: Los Angeles Lakers is suspended" in html(page)
    assert write.status_code == 403


def test_change_plan_asks_for_the_plan_then_records_the_change(operator_client, lakers_free):
    ask = run_action(operator_client, "change_plan", [lakers_free])
    assert '<select name="plan"' in html(ask)
    assert 'value="PROFESSIONAL"' in html(ask)
    assert Tenant.objects.get(pk=lakers_free.pk).plan.code == "FREE"

    done = run_action(operator_client, "change_plan", [lakers_free], plan="PROFESSIONAL", apply="1")

    assert Tenant.objects.get(pk=lakers_free.pk).plan.code == "PROFESSIONAL"
    assert "Los Angeles Lakers: moved to the PROFESSIONAL plan." in messages_of(done)
    change = PlanChange.objects.get(tenant=lakers_free)
    assert (change.from_plan.code, change.to_plan.code, change.changed_by) == ("FREE", "PROFESSIONAL", "operator")
    history = html(operator_client.get(f"{CHANGELIST}{lakers_free.pk}/change/"))
    assert re.search(r"<td>Free</td><td>Professional</td><td>operator</td>", history)


def test_change_plan_to_an_unknown_or_the_same_plan_is_an_error_message(operator_client, lakers_free):
    unknown = run_action(operator_client, "change_plan", [lakers_free], plan="GOLD", apply="1")
    same = run_action(operator_client, "change_plan", [lakers_free], plan="FREE", apply="1")

    assert any("Unknown plan 'GOLD'" in m for m in messages_of(unknown))
    assert any("already on the Free plan" in m for m in messages_of(same))
    assert Tenant.objects.get(pk=lakers_free.pk).plan.code == "FREE"
    assert not PlanChange.objects.filter(tenant=lakers_free).exists()


def test_refresh_usage_measures_the_schema_into_todays_ledger_row(operator_client, lakers_free):
    response = run_action(operator_client, "refresh_usage", [lakers_free])

    assert "Measured the usage of 1 tenant(s)." in messages_of(response)
    row = UsageDay.objects.get(tenant=lakers_free, date=utc_today())
    assert row.storage_bytes > 0
    assert Tenant.objects.get(pk=lakers_free.pk).storage_bytes == row.storage_bytes


def test_the_default_bulk_delete_is_replaced_by_the_exporting_one(operator_client, lakers_free):
    page = html(operator_client.get(CHANGELIST))
    assert 'value="delete_selected"' not in page
    assert 'value="delete_tenants"' in page


def test_delete_requires_the_schema_name_and_exports_before_dropping(operator_client, export_dir):
    doomed = services.tenant_create(name="Seattle SuperSonics", schema_name="sonics", plan="FREE")
    with schema_context("sonics"):
        get_user_model().objects.create_user(username="kemp", password="x")

    ask = run_action(operator_client, "delete_tenants", [doomed])
    assert "type <code>sonics</code>" in html(ask)

    wrong = run_action(operator_client, "delete_tenants", [doomed], apply="1", **{f"confirm_{doomed.pk}": "sonic"})
    assert any("Type the schema name 'sonics'" in m for m in messages_of(wrong))
    assert schema_exists("sonics") and Tenant.objects.filter(pk=doomed.pk).exists()
    assert not list(Path(export_dir).glob("*")) if Path(export_dir).exists() else True

    # The change page's Delete button leads to the same confirmation, through the service.
    confirm_page = operator_client.get(f"{CHANGELIST}{doomed.pk}/delete/")
    assert "type <code>sonics</code>" in html(confirm_page)
    done = operator_client.post(f"{CHANGELIST}{doomed.pk}/delete/", {f"confirm_{doomed.pk}": "sonics"}, follow=True)

    assert not schema_exists("sonics")
    assert not Tenant.objects.filter(pk=doomed.pk).exists()
    (export,) = [p for p in Path(export_dir).glob("sonics-*.json") if not p.name.endswith("-account.json")]
    assert '"username": "kemp"' in export.read_text()
    assert any(f"exported to {export}" in m for m in messages_of(done))


def test_the_public_tenant_cannot_be_reached_for_deletion(operator_client, public_tenant):
    response = operator_client.get(f"{CHANGELIST}{public_tenant.pk}/delete/", follow=True)
    assert schema_exists("public")
    assert any("doesn’t exist" in m for m in messages_of(response))


# ------------------------------------------------------------------ change page

def test_the_change_page_charts_30_days_of_ledger_rows_as_svg_bars(operator_client, lakers_free):
    today = utc_today()
    for days_ago, calls in [(0, 37), (1, 100), (5, 12), (12, 64), (29, 3)]:
        ledger(lakers_free, today - dt.timedelta(days=days_ago), api_calls=calls, storage_bytes=1000 * calls)
    ledger(lakers_free, today - dt.timedelta(days=30), api_calls=55)  # outside the window
    ledger(tenant=Tenant.objects.get(schema_name="warriors"), day=today, api_calls=71)  # another tenant's

    page = html(operator_client.get(f"{CHANGELIST}{lakers_free.pk}/change/"))

    charts = re.findall(r'<svg[^>]*class="courtside-chart".*?</svg>', page, re.S)
    assert len(charts) == 2
    calls_chart, storage_chart = charts
    assert calls_chart.count('<rect class="bar"') == 5
    assert storage_chart.count('<rect class="bar"') == 5
    assert sorted(re.findall(r'class="bar"[^>]*data-value="(\d+)"', calls_chart)) == sorted(
        ["37", "100", "12", "64", "3"]
    )
    assert 'class="limit"' in calls_chart  # the plan's 100 calls a day
    assert "https://" not in page.split("<svg", 1)[1].split("</svg>", 1)[0].replace(
        "http://www.w3.org/2000/svg", "")


def test_the_change_page_shows_and_saves_branding(operator_client, lakers_free):
    url = f"{CHANGELIST}{lakers_free.pk}/change/"
    page = html(operator_client.get(url))
    for field in ("display_name", "logo", "primary_color", "support_email"):
        assert f'id="id_{field}"' in page
    domain = Domain.objects.get(tenant=lakers_free)

    response = operator_client.post(url, {
        "name": "Los Angeles Lakers", "display_name": "Showtime Analytics", "primary_color": "#552583",
        "support_email": "help@lakers.test",
        "domains-TOTAL_FORMS": "1", "domains-INITIAL_FORMS": "1", "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000", "domains-0-id": domain.pk, "domains-0-tenant": lakers_free.pk,
        "domains-0-domain": domain.domain, "domains-0-is_primary": "on",
    })

    assert response.status_code == 302, html(response)
    lakers = Tenant.objects.get(pk=lakers_free.pk)
    assert (lakers.display_name, lakers.primary_color, lakers.support_email) == (
        "Showtime Analytics", "#552583", "help@lakers.test")
    assert lakers.plan.code == "FREE" and lakers.status == "active"  # not editable here


def test_a_bad_colour_is_a_form_error(operator_client, lakers_free):
    domain = Domain.objects.get(tenant=lakers_free)
    response = operator_client.post(f"{CHANGELIST}{lakers_free.pk}/change/", {
        "name": "Los Angeles Lakers", "primary_color": "purple",
        "domains-TOTAL_FORMS": "1", "domains-INITIAL_FORMS": "1", "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000", "domains-0-id": domain.pk, "domains-0-tenant": lakers_free.pk,
        "domains-0-domain": domain.domain, "domains-0-is_primary": "on",
    })
    assert response.status_code == 200
    assert "Use a hex colour like #552583." in html(response)
    assert Tenant.objects.get(pk=lakers_free.pk).primary_color == "#1d428a"


def test_the_add_page_offers_the_plans_and_the_first_admin_fields(operator_client):
    page = html(operator_client.get(CHANGELIST + "add/"))
    assert '<select name="plan"' in page
    assert re.search(r'<option value="FREE" selected>', page)
    for field in ("name", "schema_name", "domain", "admin_email", "admin_password"):
        assert f'name="{field}"' in page
