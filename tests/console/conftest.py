"""Fixtures of the console tests: the tenant admin tests' plan and ledger helpers."""

from tests.tenants_admin.conftest import lakers_free, ledger, put_on_plan, utc_today, warriors_starter  # noqa: F401
