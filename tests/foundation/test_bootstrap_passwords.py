"""The run log (`make run` prints bootstrap_demo's output) never echoes a password given in the environment.

A password the command generated is printed once, as before: nobody could log in otherwise.
"""

from io import StringIO

import pytest
from django.core.management import call_command

from backoffice.management.commands import bootstrap_demo
from tests.conftest import PUBLIC_HOST, TenantClient, tenant_host

pytestmark = pytest.mark.django_db

OPERATOR_PASSWORD = "operator-pw-from-env-5e1"
TENANT_PASSWORD = "tenant-pw-from-env-7c2"


@pytest.fixture
def one_small_demo_tenant(monkeypatch, public_tenant):
    monkeypatch.setattr(bootstrap_demo, "DEMO_TENANTS", [("pwdemo", "Password Demo", 3, "STARTER", "#123456")])


def run_bootstrap() -> str:
    out = StringIO()
    call_command("bootstrap_demo", "--games", "2", verbosity=0, stdout=out)
    return out.getvalue()


def logs_in(host: str, username: str, password: str) -> bool:
    response = TenantClient(host).post("/admin/login/", {"username": username, "password": password})
    return response.status_code == 302


def test_passwords_from_the_environment_are_not_echoed_and_still_work(one_small_demo_tenant, monkeypatch):
    monkeypatch.setenv("COURTSIDE_ADMIN_PASSWORD", OPERATOR_PASSWORD)
    monkeypatch.setenv("COURTSIDE_DEMO_TENANT_PASSWORD", TENANT_PASSWORD)
    log = run_bootstrap()
    assert OPERATOR_PASSWORD not in log and TENANT_PASSWORD not in log
    assert "COURTSIDE_ADMIN_PASSWORD" in log and "COURTSIDE_DEMO_TENANT_PASSWORD" in log  # where to find them
    assert logs_in(PUBLIC_HOST, "operator", OPERATOR_PASSWORD)
    assert logs_in(tenant_host("pwdemo"), "admin", TENANT_PASSWORD)


def test_a_generated_password_is_printed_once(one_small_demo_tenant, monkeypatch):
    monkeypatch.delenv("COURTSIDE_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("COURTSIDE_DEMO_TENANT_PASSWORD", raising=False)
    log = run_bootstrap()
    operator_line = next(line for line in log.splitlines() if line.startswith("Operator superuser"))
    operator_password = operator_line.split(" / ")[1].split(" ")[0]
    tenant_line = next(line for line in log.splitlines() if line.startswith("Created tenant pwdemo"))
    tenant_password = tenant_line.split(" / ")[1].split(" ")[0]
    assert "(shown once)" in operator_line and "(shown once)" in tenant_line
    assert logs_in(PUBLIC_HOST, "operator", operator_password)
    assert logs_in(tenant_host("pwdemo"), "admin", tenant_password)
    again = run_bootstrap()
    assert operator_password not in again and tenant_password not in again
