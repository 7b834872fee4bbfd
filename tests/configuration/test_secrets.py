"""A secret never appears in admin HTML, API JSON, an export or a log line."""

import json
import logging

import pytest
import yaml
from django.core.management import call_command

from configuration.conf import config
from configuration.models import ConfigChange, ConfigEntry

TOKEN = "sk-live-4f8a9b2c7d1e"
PLAIN_SECRET = "quietly-kept-value-77"

# The mark (not only the fixture) so the database is open before the shared autouse fixtures run.
pytestmark = pytest.mark.django_db


@pytest.fixture
def secrets(db):
    config.set("integrations.stats_provider.api_token", "sk-old-111111")
    config.set("integrations.stats_provider.api_token", TOKEN)  # by its name
    config.set("integrations.webhook", {"url": "https://hooks.example.invalid", "note": PLAIN_SECRET},
               secret=True)  # marked secret
    return ConfigEntry.objects.get(key="integrations.stats_provider.api_token")


def assert_hidden(text: str):
    assert TOKEN not in text and "sk-old-111111" not in text and PLAIN_SECRET not in text


def test_the_stored_value_is_real_and_readable_in_code(secrets):
    assert config.get("integrations.stats_provider.api_token") == TOKEN
    assert config.get("integrations.webhook.note") == PLAIN_SECRET


def test_no_secret_in_the_operator_admin_html(secrets, operator_client):
    webhook = ConfigEntry.objects.get(key="integrations.webhook")
    change = ConfigChange.objects.get(key="integrations.stats_provider.api_token", version=2)
    pages = [
        "/admin/configuration/configentry/",
        f"/admin/configuration/configentry/{secrets.pk}/change/",
        f"/admin/configuration/configentry/{webhook.pk}/change/",
        "/admin/configuration/configchange/",
        f"/admin/configuration/configchange/{change.pk}/change/",
        "/admin/configuration/configentry/effective/",
    ]
    for url in pages:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        assert_hidden(response.content.decode())
    assert "********" in operator_client.get("/admin/configuration/configentry/").content.decode()


def test_saving_a_secret_form_left_empty_keeps_the_secret(secrets, operator_client):
    response = operator_client.post(f"/admin/configuration/configentry/{secrets.pk}/change/", {"value": ""})
    assert response.status_code == 302
    assert config.get("integrations.stats_provider.api_token") == TOKEN


def test_no_secret_in_the_api_json(secrets, operator_client):
    urls = ["/api/v1/config/", "/api/v1/config/entries/", f"/api/v1/config/entries/{secrets.pk}/",
            "/api/v1/config/keys/integrations.stats_provider/", "/api/v1/config/keys/integrations.webhook/",
            "/api/v1/config/history/"]
    for url in urls:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        assert_hidden(response.content.decode())
    key = operator_client.get("/api/v1/config/keys/integrations.stats_provider.api_token/").json()
    assert (key["value"], key["source"], key["secret"]) == ("********", "database", True)


def test_writing_through_the_api_answers_masked(db, operator_client):
    response = operator_client.post("/api/v1/config/entries/", {"key": "integrations.db_password", "value": TOKEN},
                                    content_type="application/json")
    assert response.status_code == 201
    assert response.json()["value"] == "********"
    assert config.get("integrations.db_password") == TOKEN


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_no_secret_in_an_export_and_reimport_keeps_it(secrets, capsys, tmp_path, fmt):
    call_command("config_export", "--format", fmt)
    out = capsys.readouterr().out
    assert_hidden(out)
    data = yaml.safe_load(out) if fmt == "yaml" else json.loads(out)
    assert data["integrations"]["stats_provider"]["api_token"] == "********"
    path = tmp_path / f"export.{fmt}"
    path.write_text(out)
    call_command("config_import", str(path))
    assert config.get("integrations.stats_provider.api_token") == TOKEN


def test_no_secret_in_the_change_log(db, caplog):
    config.set("integrations.stats_provider.api_token", "sk-first-000")
    config.watch("integrations", lambda *args: None)
    with caplog.at_level(logging.INFO, logger="configuration"):
        config.set("integrations.stats_provider.api_token", TOKEN)
        config.check_watchers()
    assert "integrations.stats_provider.api_token changed" in caplog.text
    assert TOKEN not in caplog.text and "sk-first-000" not in caplog.text
