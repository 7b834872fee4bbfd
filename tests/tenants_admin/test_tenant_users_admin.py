"""Users in the tenant admin count against the plan's user quota: one more is a form error, not a 500."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django_tenants.utils import schema_context

from .conftest import put_on_plan

ADD = "/admin/auth/user/add/"
NEW_USER = {"username": "scout", "usable_password": "true", "password1": "a-long-pass-phrase-9",
            "password2": "a-long-pass-phrase-9"}


def usernames(schema: str) -> list[str]:
    with schema_context(schema):
        return sorted(get_user_model().objects.values_list("username", flat=True))


def test_a_user_within_the_quota_is_added(lakers_client, tenant_lakers):
    put_on_plan(tenant_lakers, "STARTER")  # five users

    response = lakers_client.post(ADD, NEW_USER)

    assert response.status_code == 302
    assert usernames("lakers") == ["lakers_admin", "scout"]


def test_one_user_over_the_quota_is_a_form_error_and_nothing_is_written(lakers_client, tenant_lakers):
    put_on_plan(tenant_lakers, "FREE")  # one user: the admin who is logged in

    response = lakers_client.post(ADD, NEW_USER)

    assert response.status_code == 200
    assert "The Free plan allows 1 users; this tenant has 1." in response.content.decode()
    assert usernames("lakers") == ["lakers_admin"]


def test_the_operator_adds_users_without_a_tenant_quota(operator_client):
    response = operator_client.post(ADD, NEW_USER)
    assert response.status_code == 302
    assert "scout" in usernames("public")
