"""Login throttling over real HTTP: the admins' login forms and HTTP Basic on the API, per site + user + address."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django_tenants.utils import schema_context

from security import lockout
from security.client import client_ip as lockout_client_ip
from tests.conftest import TenantClient, make_user
from tests.security.conftest import admin_login

pytestmark = pytest.mark.django_db(transaction=True)

WRONG = "not-the-password"
RIGHT = "pass-word-123"


def _age_attempts(schema_name: str, by: dt.timedelta) -> None:
    """Move a site's attempts back in time, as if the cool-off had passed."""
    with schema_context(schema_name):
        for attempt in AccessAttempt.objects.all():
            AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=attempt.attempt_time - by)


def test_thirty_wrong_passwords_on_the_operator_admin_lock_the_login_and_the_right_one_is_refused_until_cooloff(
        http_for, public_tenant, caplog):
    make_user("public", username="operator", superuser=True)
    http = http_for("public")
    caplog.set_level(logging.WARNING, logger="courtside.security")

    statuses = [admin_login(http, "operator", WRONG).status_code for _ in range(30)]

    limit = settings.AXES_FAILURE_LIMIT
    assert statuses[:limit - 1] == [200] * (limit - 1)  # the form says "wrong password"
    assert statuses[limit - 1:] == [429] * (30 - limit + 1), statuses
    refused = admin_login(http, "operator", RIGHT)
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.text and 'id="login-form"' in refused.text
    assert "Please enter the correct username and password" not in refused.text
    assert http.get("/admin/").status_code == 302  # no session was made
    assert any("Login locked out: site=public username='operator'" in r.getMessage() for r in caplog.records)
    assert AccessFailureLog.objects.filter(username="operator").count() == 31

    _age_attempts("public", lockout.cooloff() + dt.timedelta(seconds=1))
    assert admin_login(http, "operator", RIGHT).status_code == 302
    assert http.get("/admin/").status_code == 200


def test_basic_auth_on_the_api_locks_out_with_the_json_error_shape_and_other_sites_users_are_untouched(
        http_for, tenant_lakers, tenant_warriors, settings):
    for schema in ("lakers", "warriors"):
        make_user(schema, username="coach", staff=False)
    lakers, warriors = http_for("lakers"), http_for("warriors")

    statuses = [lakers.get("/api/v1/teams/", auth=("coach", WRONG)).status_code for _ in range(30)]

    assert statuses.count(401) == settings.AXES_FAILURE_LIMIT - 1 and statuses.count(429) == 30 - statuses.count(401)
    refused = lakers.get("/api/v1/teams/", auth=("coach", RIGHT))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "login_locked_out"
    assert "Too many failed logins" in refused.json()["error"]["message"]
    assert int(refused.headers["Retry-After"]) == int(lockout.cooloff().total_seconds())
    # Same username, same address, another tenant: another person, not locked out.
    assert warriors.get("/api/v1/teams/", auth=("coach", RIGHT)).status_code == 200
    with schema_context("warriors"):
        assert not AccessAttempt.objects.exists() and not AccessFailureLog.objects.exists()
    with schema_context("lakers"):
        assert AccessFailureLog.objects.filter(username="coach").count() == 31
    # Same user, another client address (one trusted proxy in front): not locked out either.
    settings.TRUSTED_PROXY_COUNT = 1
    other = lakers.get("/api/v1/teams/", auth=("coach", RIGHT), headers={"X-Forwarded-For": "203.0.113.7"})
    assert other.status_code == 200
    assert lakers.get("/api/v1/teams/", auth=("coach", RIGHT)).status_code == 429


def test_basic_auth_on_the_registry_api_locks_out_like_the_rest_of_the_api(http_for, public_tenant, settings):
    """The registry's views name their own authentication classes: they must be the throttled ones too."""
    make_user("public", username="operator", superuser=True)
    http = http_for("public")

    statuses = [http.get("/api/v1/services/", auth=("operator", WRONG)).status_code for _ in range(15)]

    assert statuses.count(401) == settings.AXES_FAILURE_LIMIT - 1, statuses
    refused = http.get("/api/v1/services/", auth=("operator", RIGHT))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "login_locked_out"


def test_tenant_admin_login_form_locks_out_and_the_lockout_shows_in_both_admins_and_is_cleared_by_the_operator(
        http_for, tenant_lakers, tenant_warriors):
    make_user("lakers", username="coach", staff=True)
    make_user("warriors", username="coach", staff=True)
    make_user("public", username="operator", superuser=True)
    lakers = http_for("lakers")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        admin_login(lakers, "coach", WRONG)
    assert admin_login(lakers, "coach", RIGHT).status_code == 429
    assert admin_login(http_for("warriors"), "coach", RIGHT).status_code == 302

    # The operator sees which site is under attack, then that site's lockouts, and clears them.
    operator = TenantClient("localhost")
    with schema_context("public"):
        from django.contrib.auth.models import User

        operator.force_login(User.objects.get(username="operator"))
    page = operator.get("/admin/axes/accessattempt/")
    assert page.status_code == 200
    assert 'href="?site=lakers&locked_out=yes"' in page.content.decode()
    operator.get("/admin/axes/accessattempt/?site=lakers")
    listed = operator.get("/admin/axes/accessattempt/").content.decode()
    assert "coach" in listed and "Locked Out" in listed
    with schema_context("lakers"):
        ids = list(AccessAttempt.objects.values_list("pk", flat=True))
    cleared = operator.post("/admin/axes/accessattempt/", {"action": "clear_lockouts", "_selected_action": ids})
    assert cleared.status_code == 302
    with schema_context("lakers"):
        assert not AccessAttempt.objects.exists()
        from auditlog.models import LogEntry

        entry = LogEntry.objects.get(content_type__model="accessattempt")
        assert entry.additional_data["actor"] == "operator" and entry.changes["username"] == ["coach", None]
    assert admin_login(lakers, "coach", RIGHT).status_code == 302


def test_a_tenant_admin_lists_its_own_lockouts_only(tenant_lakers, tenant_warriors, lakers_client, warriors_client):
    for schema, name in (("lakers", "lakers-attacked"), ("warriors", "warriors-attacked")):
        with schema_context(schema):
            AccessAttempt.objects.create(username=name, ip_address="198.51.100.4", user_agent="x", http_accept="*/*",
                                         path_info="/admin/login/", get_data="", post_data="",
                                         failures_since_start=settings.AXES_FAILURE_LIMIT)
    page = lakers_client.get("/admin/axes/accessattempt/").content.decode()
    assert "lakers-attacked" in page and "warriors-attacked" not in page
    assert "?site=" not in page  # no site switch outside the operator's admin


def test_a_refused_api_key_is_logged_with_its_prefix_and_never_its_secret(http_for, tenant_lakers, caplog):
    caplog.set_level(logging.WARNING, logger="courtside.security")
    response = http_for("lakers").get("/api/v1/teams/", headers={"Authorization": "Api-Key cs_abcd1234.topsecret99"})
    assert response.status_code == 401
    lines = [r.getMessage() for r in caplog.records if "API key refused" in r.getMessage()]
    assert lines and "site=lakers" in lines[0] and "cs_abcd1234" in lines[0]
    assert all("topsecret99" not in r.getMessage() for r in caplog.records)


@pytest.mark.django_db(transaction=False)
def test_the_client_address_ignores_forwarded_headers_unless_proxies_are_declared(rf, settings):
    request = rf.get("/", HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.2", REMOTE_ADDR="10.0.0.1")
    settings.TRUSTED_PROXY_COUNT = 0
    assert lockout_client_ip(request) == "10.0.0.1"
    settings.TRUSTED_PROXY_COUNT = 1
    assert lockout_client_ip(request) == "10.0.0.2"
    settings.TRUSTED_PROXY_COUNT = 2
    assert lockout_client_ip(request) == "203.0.113.9"
    settings.TRUSTED_PROXY_COUNT = 1
    garbage = rf.get("/", HTTP_X_FORWARDED_FOR="not-an-address", REMOTE_ADDR="10.0.0.1")
    assert lockout_client_ip(garbage) is None  # never a value the address columns would refuse
