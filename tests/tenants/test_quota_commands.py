"""A row-quota refusal met by a command is a CommandError with the plan's message, never a traceback.

The users quota is a trigger in every tenant schema (public.courtside_enforce_row_quota,
SQLSTATE CQ001). Commands reach a tenant's tables through `tenant create` (a
service) or through django-tenants' wrappers, which run any command inside a
tenant schema: `tenant_command`, `all_tenants_command`, `create_tenant_superuser`.
"""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django_tenants.utils import schema_context

from tenants.models import Plan, Tenant
from tests.conftest import database_url, make_user
from tests.tenants.conftest import put_on_plan

ROOT = Path(__file__).resolve().parents[2]


def _schema_exists(name):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [name])
        return cursor.fetchone() is not None


def _users(schema_name):
    with schema_context(schema_name):
        return sorted(get_user_model().objects.values_list("username", flat=True))


def test_tenant_create_past_the_users_quota_is_a_command_error_and_leaves_nothing(public_tenant, plan_factory):
    plan_factory(code="NOSEATS", max_users=0)

    with pytest.raises(CommandError, match=r"The Noseats plan allows 0 users; this tenant has 0\."):
        call_command("tenant", "create", "celtics", "--name", "Boston Celtics", "--plan", "NOSEATS",
                     "--admin-email", "gm@celtics.example", "--admin-password", "a-long-password-1",
                     stdout=StringIO())

    assert not Tenant.objects.filter(schema_name="celtics").exists()
    assert not _schema_exists("celtics")


def test_the_operator_api_answers_a_quota_refusal_at_sign_up_with_a_clear_error(operator_client, plan_factory):
    plan_factory(code="NOSEATS", max_users=0)

    response = operator_client.post("/api/v1/tenants/", {
        "name": "Boston Celtics", "schema_name": "celtics", "plan": "NOSEATS",
        "admin_email": "gm@celtics.example", "admin_password": "a-long-password-1",
    }, content_type="application/json")

    assert 400 <= response.status_code < 500
    assert "allows 0 users" in str(response.json()["error"])
    assert not Tenant.objects.filter(schema_name="celtics").exists()


@pytest.mark.parametrize("command, schema_option", [
    (["tenant_command", "createsuperuser"], {"schema": "lakers"}),
    (["create_tenant_superuser", "--schema=lakers"], {}),
])
def test_createsuperuser_in_a_tenant_past_its_users_quota_is_a_command_error(tenant_lakers, plan_factory, command,
                                                                              schema_option):
    put_on_plan(tenant_lakers, plan_factory(max_users=1))
    make_user("lakers", username="first")

    # A savepoint, as the command line's autocommit would give: the test's own transaction stays usable.
    with pytest.raises(CommandError, match=r"allows 1 users; this tenant has 1\."), transaction.atomic():
        call_command(*command, "--noinput", "--username=second", "--email=second@lakers.example",
                     stdout=StringIO(), stderr=StringIO(), **schema_option)

    assert _users("lakers") == ["first"]


def test_any_command_run_in_every_tenant_reports_the_refusal_as_a_command_error(two_tenants, plan_factory,
                                                                                tmp_path):
    lakers, _ = two_tenants
    put_on_plan(lakers, plan_factory(max_users=1))
    make_user("lakers", username="first")
    fixture = tmp_path / "ops_user.json"
    fixture.write_text('[{"model": "auth.user", "fields": {"username": "ops", "password": "!"}}]')

    with pytest.raises(CommandError, match="allows 1 users"), transaction.atomic():
        call_command("all_tenants_command", "loaddata", str(fixture), no_public=True, stdout=StringIO(),
                     stderr=StringIO())

    assert _users("lakers") == ["first"]


def _manage(*args, env_extra=None):
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "backoffice.settings.test",
           "COURTSIDE_EMBEDDED_AUTOSTART": "0", **(env_extra or {})}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.django_db(transaction=True)
def test_on_the_command_line_the_refusal_is_one_line_and_exit_status_1(two_tenants):
    lakers, _ = two_tenants
    plan = Plan.objects.create(code="ONESEAT", name="One seat", max_users=1)
    put_on_plan(lakers, plan)
    make_user("lakers", username="first")

    for argv in (["tenant_command", "createsuperuser", "--schema=lakers"],
                 ["create_tenant_superuser", "--schema=lakers"],
                 ["all_tenants_command", "--no-public", "createsuperuser"]):
        done = _manage(*argv, "--noinput", "--username=second", "--email=second@lakers.example",
                       env_extra={"DJANGO_SUPERUSER_PASSWORD": "a-long-password-1"})
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, (argv, done.stderr)
        assert "CommandError: The One seat plan allows 1 users; this tenant has 1." in done.stderr, argv

    Plan.objects.create(code="NOSEATS", name="No seats", max_users=0)
    done = _manage("tenant", "create", "celtics", "--name", "Boston Celtics", "--plan", "NOSEATS",
                   "--admin-email", "gm@celtics.example", env_extra={
                       "COURTSIDE_TENANT_ADMIN_PASSWORD": "a-long-password-1", "TENANT_POOL_SIZE": "0"})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "CommandError: The No seats plan allows 0 users; this tenant has 0." in done.stderr
    assert not Tenant.objects.filter(schema_name="celtics").exists() and not _schema_exists("celtics")
    assert _users("lakers") == ["first"]
