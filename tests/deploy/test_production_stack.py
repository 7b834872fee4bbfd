"""The production stack serves the admin, both API docs and the APIs with DEBUG=False, over real HTTP."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.deploy.stack import HTTPS

# Only the tests that write rows the server must see commit them (a transactional test's clean-up is slow).
committed = pytest.mark.django_db(transaction=True)


def _get(server, path, host="localhost", **kwargs):
    return httpx.get(f"{server.url}{path}", headers={**HTTPS, "Host": host, **kwargs.pop("headers", {})},
                     timeout=30, **kwargs)


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def test_operator_admin_login_and_its_css_are_served(production_server):
    page = _get(production_server, "/admin/login/")
    assert page.status_code == 200, page.text[:500]
    stylesheets = [path for path in _assets(page.text) if path.endswith(".css")]
    assert any(re.search(r"/static/admin/css/base\.[0-9a-f]{12}\.css$", path) for path in stylesheets), stylesheets
    for path in stylesheets:
        css = _get(production_server, path, headers={"Accept-Encoding": "gzip"})
        assert css.status_code == 200, path
        assert css.headers["content-type"].startswith("text/css")
        assert css.headers.get("content-encoding") == "gzip", path  # the compressed copy collectstatic made
        assert "immutable" in css.headers.get("cache-control", ""), path  # hashed names are cached for ever
    assert _get(production_server, "/static/admin/css/not-there.css").status_code == 404


@pytest.mark.parametrize("host", ["localhost", "lakers.localhost"])
def test_both_api_docs_pages_load_their_vendored_swagger_ui(production_server, host):
    if host == "localhost":  # the operator's docs are for operators: anonymous gets the login page
        assert _get(production_server, "/api/docs/").status_code == 302
        return
    page = _get(production_server, "/api/docs/", host=host)
    assert page.status_code == 200
    assets = _assets(page.text)
    assert any("swagger-ui-bundle" in path for path in assets), assets
    for path in assets:
        asset = _get(production_server, path, host=host)
        assert asset.status_code == 200, path
        assert len(asset.content) > 100
    schema = _get(production_server, "/api/schema/", host=host, headers={"Accept": "application/json"})
    assert schema.status_code == 200 and schema.json()["openapi"].startswith("3.")


@committed
def test_operator_docs_assets_for_an_operator(production_server):
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from tests.conftest import make_user

    user = make_user("public", username="ops-docs", superuser=True)
    # Hashed as production hashes (the test settings use a fast hasher production does not accept).
    user.password = PBKDF2PasswordHasher().encode("a-long-pass-word-4-docs", "saltsaltsalt")
    user.save(update_fields=["password"])
    jar: dict[str, str] = {}  # the cookies are Secure (production): kept by hand, as the TLS proxy would pass them

    def call(method, path, **kwargs):
        headers = {**HTTPS, "Host": "localhost", "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items()),
                   "Referer": "https://localhost/admin/login/", **kwargs.pop("headers", {})}
        response = httpx.request(method, f"{production_server.url}{path}", headers=headers, timeout=30, **kwargs)
        jar.update(response.cookies)
        return response

    login = call("GET", "/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    done = call("POST", "/admin/login/?next=/api/docs/", data={
        "csrfmiddlewaretoken": token, "username": "ops-docs", "password": "a-long-pass-word-4-docs",
        "next": "/api/docs/"})
    assert done.status_code == 302, done.text[:500]
    docs = call("GET", "/api/docs/")
    assert docs.status_code == 200
    assets = _assets(docs.text)
    assert assets and all(call("GET", path).status_code == 200 for path in assets)
    assert call("GET", "/api/schema/", headers={"Accept": "application/json"}).status_code == 200


@committed
def test_the_tenant_and_operator_apis_answer(production_server, tenant_lakers):
    from tenants import services

    _, key = services.api_key_create(tenant=tenant_lakers, name="stack test")
    players = _get(production_server, "/api/v1/players/", host="lakers.localhost",
                   headers={"Authorization": f"Api-Key {key}"})
    assert players.status_code == 200, players.text[:500]
    assert "results" in players.json()
    refused = _get(production_server, "/api/v1/players/", host="lakers.localhost")
    assert refused.status_code in (401, 403) and refused.json()["error"]["code"]
    assert _get(production_server, "/api/v1/tenants/").status_code in (401, 403)
    unknown = _get(production_server, "/api/v1/players/", host="nobody.localhost")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_host"


def test_debug_is_off(production_server):
    missing = _get(production_server, "/no-such-page/")
    assert missing.status_code == 404
    assert "URLconf" not in missing.text and "Traceback" not in missing.text
