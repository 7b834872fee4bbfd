"""A secret inside a list (or a list of lists, or a dict in a list) is masked on every surface.

`{"key": "integrations.backups", "value": [{"host": "h", "password": "S"}]}` used to
show S in the API, the history, both admin lists and config_export.
"""

import json
import logging

import pytest
import yaml
from django.core.management import CommandError, call_command

from configuration import services
from configuration.conf import config
from configuration.models import ConfigChange, ConfigEntry
from core.masking import MASK

pytestmark = pytest.mark.django_db

BACKUP_PASSWORD = "backup-pw-5c1e9a77"
OLD_PASSWORD = "backup-pw-old-0042"
NESTED_TOKEN = "tok-deep-in-lists-3141"
BACKUPS = [{"host": "h", "password": BACKUP_PASSWORD}, {"host": "h2", "port": 22}]


@pytest.fixture
def backups(db):
    config.set("integrations.backups", [{"host": "h", "password": OLD_PASSWORD}])
    config.set("integrations.backups", BACKUPS)
    config.set("integrations.mirrors", [[{"url": "https://m.example.invalid", "token": NESTED_TOKEN}]])
    return ConfigEntry.objects.get(key="integrations.backups")


def assert_hidden(text: str):
    for secret in (BACKUP_PASSWORD, OLD_PASSWORD, NESTED_TOKEN):
        assert secret not in text


def test_code_still_reads_the_real_values(backups):
    assert config.get("integrations.backups")[0]["password"] == BACKUP_PASSWORD
    assert config.get("integrations.mirrors")[0][0]["token"] == NESTED_TOKEN


def test_the_api_masks_secrets_inside_lists_and_keeps_the_rest(backups, operator_client):
    urls = ["/api/v1/config/", "/api/v1/config/entries/", f"/api/v1/config/entries/{backups.pk}/",
            "/api/v1/config/keys/integrations.backups/", "/api/v1/config/keys/integrations/",
            "/api/v1/config/keys/integrations.mirrors/", "/api/v1/config/history/",
            "/api/v1/config/history/?key=integrations.backups"]
    for url in urls:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        assert_hidden(response.content.decode())
    shown = operator_client.get(f"/api/v1/config/entries/{backups.pk}/").json()["value"]
    assert shown == [{"host": "h", "password": MASK}, {"host": "h2", "port": 22}]
    key = operator_client.get("/api/v1/config/keys/integrations.mirrors/").json()
    assert key["value"] == [[{"url": "https://m.example.invalid", "token": MASK}]]


def test_both_admin_lists_the_history_and_the_forms_mask_secrets_inside_lists(backups, operator_client):
    change = ConfigChange.objects.get(key="integrations.backups", version=2)
    pages = [
        "/admin/configuration/configentry/",
        f"/admin/configuration/configentry/{backups.pk}/change/",
        "/admin/configuration/configchange/",
        f"/admin/configuration/configchange/{change.pk}/change/",
        "/admin/configuration/configentry/effective/",
    ]
    for url in pages:
        response = operator_client.get(url)
        assert response.status_code == 200, url
        assert_hidden(response.content.decode())
    listing = operator_client.get("/admin/configuration/configentry/").content.decode()
    assert "&quot;host&quot;: &quot;h2&quot;" in listing and "&quot;password&quot;: &quot;********&quot;" in listing


def test_saving_the_admin_form_with_the_masked_list_keeps_the_password(backups, operator_client):
    form = [{"host": "h", "password": MASK}, {"host": "h3", "port": 2222}]
    response = operator_client.post(f"/admin/configuration/configentry/{backups.pk}/change/",
                                    {"value": json.dumps(form)})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert config.get("integrations.backups") == [{"host": "h", "password": BACKUP_PASSWORD},
                                                  {"host": "h3", "port": 2222}]


def test_the_api_keeps_a_masked_password_sent_back_and_takes_a_new_one(backups, operator_client):
    response = operator_client.post("/api/v1/config/entries/", {
        "key": "integrations.backups", "value": [{"host": "h-new", "password": MASK}]},
        content_type="application/json")
    assert response.status_code == 200, response.content
    assert response.json()["value"] == [{"host": "h-new", "password": MASK}]
    assert config.get("integrations.backups") == [{"host": "h-new", "password": BACKUP_PASSWORD}]
    operator_client.post("/api/v1/config/entries/", {
        "key": "integrations.backups", "value": [{"host": "h-new", "password": "rotated-pw"}]},
        content_type="application/json")
    assert config.get("integrations.backups")[0]["password"] == "rotated-pw"


def test_a_mask_where_no_secret_is_kept_is_refused(backups):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="no stored secret"):
        services.entry_set(key="integrations.backups",
                           value=[{"host": "h"}, {"host": "h2", "password": MASK}])
    assert config.get("integrations.backups") == BACKUPS


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_an_export_masks_secrets_in_lists_and_reimports_as_a_no_op(backups, capsys, tmp_path, fmt):
    call_command("config_export", "--format", fmt)
    out = capsys.readouterr().out
    assert_hidden(out)
    data = yaml.safe_load(out) if fmt == "yaml" else json.loads(out)
    assert data["integrations"]["backups"][0] == {"host": "h", "password": MASK}
    path = tmp_path / f"export.{fmt}"
    path.write_text(out)
    versions = dict(ConfigEntry.objects.values_list("key", "version"))
    call_command("config_import", str(path))
    assert_hidden(capsys.readouterr().out)
    assert config.get("integrations.backups") == BACKUPS
    assert config.get("integrations.mirrors")[0][0]["token"] == NESTED_TOKEN
    assert dict(ConfigEntry.objects.values_list("key", "version")) == versions  # nothing rewritten


def test_an_import_diff_masks_secrets_in_lists(backups, tmp_path, capsys):
    path = tmp_path / "in.yaml"
    path.write_text(yaml.safe_dump({"integrations": {"backups": [{"host": "h9", "password": "brand-new-pw-77"}]}}))
    call_command("config_import", str(path), "--dry-run")
    out = capsys.readouterr().out
    assert_hidden(out)
    assert "brand-new-pw-77" not in out and "h9" in out


def test_an_import_with_a_mask_where_nothing_is_stored_is_refused(db, tmp_path):
    path = tmp_path / "in.yaml"
    path.write_text(yaml.safe_dump({"integrations": {"backups": [{"host": "h", "password": MASK}]}}))
    with pytest.raises(CommandError, match="no stored secret"):
        call_command("config_import", str(path))
    assert not ConfigEntry.objects.filter(key="integrations.backups").exists()


def test_the_change_log_masks_secrets_inside_lists(backups, caplog):
    config.watch("integrations", lambda *args: None)
    with caplog.at_level(logging.INFO, logger="configuration"):
        # Spaces in the value: a text pattern over the formatted line would hide only its first word.
        config.set("integrations.backups", [{"host": "h", "password": "next pw 9988"}])
        config.check_watchers()
    assert "integrations.backups changed" in caplog.text
    assert BACKUP_PASSWORD not in caplog.text and "9988" not in caplog.text


def test_a_tenant_override_with_a_secret_in_a_list_is_masked_in_the_tenant_api(tenant_lakers, lakers_client):
    services.schema_set(key="delivery.destinations", schema={"type": "array"}, tenant_editable=True)
    config.set("delivery.destinations", [{"sftp": "s.example.invalid", "password": BACKUP_PASSWORD}],
               tenant=tenant_lakers)
    for url in ("/api/v1/config/", "/api/v1/config/overrides/"):
        response = lakers_client.get(url)
        assert response.status_code == 200, url
        assert_hidden(response.content.decode())
    overrides = lakers_client.get("/api/v1/config/overrides/").json()
    rows = overrides["results"] if isinstance(overrides, dict) else overrides
    assert rows[0]["value"] == [{"sftp": "s.example.invalid", "password": MASK}]
    page = lakers_client.get("/admin/configuration/tenantoverride/").content.decode()
    assert_hidden(page)
