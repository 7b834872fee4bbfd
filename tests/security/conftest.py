"""Helpers of the security tests: real HTTP logins through the live server, TOTP codes from a secret."""

from __future__ import annotations

import base64
import re
import time

import httpx
import pytest
from django_otp.oath import TOTP

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def totp_code(secret: str, *, at: float | None = None) -> str:
    """The 6-digit code an authenticator app shows for a base32 secret (spaces allowed)."""
    key = base64.b32decode(secret.replace(" ", "").upper())
    totp = TOTP(key, step=30, t0=0, digits=6)
    totp.time = at if at is not None else time.time()
    return f"{totp.token():06d}"


def csrf_token(http: httpx.Client, path: str) -> str:
    page = http.get(path)
    match = CSRF_INPUT.search(page.text)
    assert match, f"no CSRF token on {path}: {page.status_code}"
    return match.group(1)


def admin_post(http: httpx.Client, path: str, data: dict, **headers) -> httpx.Response:
    """POST an admin form the way a browser does: its CSRF token, and the Referer Django checks."""
    token = csrf_token(http, path)
    return http.post(path, data={"csrfmiddlewaretoken": token, **data}, headers=headers)


def admin_login(http: httpx.Client, username: str, password: str) -> httpx.Response:
    return admin_post(http, "/admin/login/?next=/admin/", {"username": username, "password": password,
                                                          "next": "/admin/"})


@pytest.fixture
def http_for(live_server):
    """An httpx client bound to a site of the live server (the Host header picks the tenant)."""
    clients = []

    def factory(schema_name: str | None = None, **kwargs) -> httpx.Client:
        from tests.conftest import PUBLIC_HOST, tenant_host

        host = PUBLIC_HOST if schema_name in (None, "public") else tenant_host(schema_name)
        client = httpx.Client(base_url=live_server.url, headers={"Host": host}, timeout=30, **kwargs)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
