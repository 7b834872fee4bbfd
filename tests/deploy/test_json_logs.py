"""The production server logs one JSON object per line, with request ids, and never a token or a secret value."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from tests.deploy.stack import HTTPS

SECRET_VALUE = "whsec-6d0c1e2f3a4b5c6d7e8f"


@pytest.mark.django_db(transaction=True)
def test_json_lines_with_request_ids_and_no_secrets(production_server, tenant_lakers):
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    from tenants import services
    from tests.conftest import make_user

    _, key = services.api_key_create(tenant=tenant_lakers, name="logs")
    operator = make_user("public", username="ops-logs", superuser=True)
    operator.password = PBKDF2PasswordHasher().encode("a-long-pass-word-4-logs", "saltsaltsalt")
    operator.save(update_fields=["password"])
    basic = "Basic " + base64.b64encode(b"ops-logs:a-long-pass-word-4-logs").decode()
    start = len(production_server.lines)

    def call(method, path, host, request_id, **kwargs):
        headers = {**HTTPS, "Host": host, "X-Request-ID": request_id, **kwargs.pop("headers", {})}
        return httpx.request(method, f"{production_server.url}{path}", headers=headers, timeout=30, **kwargs)

    assert call("GET", "/api/v1/players/", "lakers.localhost", "rid-ok",
                headers={"Authorization": f"Api-Key {key}"}).status_code == 200
    # The key where it does not belong, a wrong key, and a secret configuration value set and refused.
    call("GET", f"/api/v1/players/?api_key={key}&token={key}", "lakers.localhost", "rid-query")
    assert call("GET", "/api/v1/players/", "lakers.localhost", "rid-bad",
                headers={"Authorization": f"Api-Key {key[:-4]}zzzz"}).status_code == 401
    stored = call("POST", "/api/v1/config/entries/", "localhost", "rid-secret", headers={"Authorization": basic},
                  json={"key": "integrations.stats_provider.api_token", "value": SECRET_VALUE})
    assert stored.status_code in (200, 201), stored.text
    refused = call("POST", "/api/v1/config/entries/", "localhost", "rid-refused", headers={"Authorization": basic},
                   json={"key": "integrations.stats_provider.api_token", "value": SECRET_VALUE,
                         "tenant": "no-such-tenant"})
    assert refused.status_code in (400, 404) and refused.json()["error"]["request_id"] == "rid-refused"
    production_server.wait_for(r'"request_id": "rid-refused"', timeout=10)

    output = "".join(production_server.lines[start:])
    assert key not in output and key.split(".")[-1] not in output
    assert SECRET_VALUE not in output
    records = [json.loads(line) for line in production_server.lines[start:] if line.startswith("{")]
    assert records, output[-2000:]
    for record in records:
        assert {"time", "level", "logger", "message", "request_id", "tenant", "user"} <= set(record), record
    requests = {r["request_id"]: r for r in records if r["logger"] == "courtside.request"}
    assert requests["rid-ok"]["tenant"] == "lakers" and requests["rid-ok"]["status"] == 200
    assert requests["rid-ok"]["route"] == "api/v1/players/"
    assert requests["rid-bad"]["status"] == 401
    assert requests["rid-secret"]["user"] == "ops-logs" and requests["rid-secret"]["tenant"] == "public"
    assert "?" not in requests["rid-query"]["message"]  # the query string (a key, a signed link) is never logged
