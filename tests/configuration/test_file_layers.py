"""File layers and environment prefixes with priorities, added by setting (issue 18)."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from configuration import stack
from configuration.checks import check_configuration
from configuration.conf import config

pytestmark = pytest.mark.django_db


@pytest.fixture
def layered(write_config, monkeypatch):
    write_config("base.yaml", "reports: {max_rows: 100, default_season: '2023-24'}\napi: {page_size: 10}\n")
    write_config("app.yaml", "reports: {max_rows: 200}\napi: {page_size: 20, rate_limit_per_minute: 99}\n")
    write_config("secrets.json", json.dumps({"api": {"page_size": 30},
                                             "integrations": {"stats_provider": {"api_token": "sk-file-123"}}}))
    monkeypatch.setenv("COURTSIDE_CONFIG_FILES", "app.yaml:100,secrets.json:150")
    monkeypatch.setenv("COURTSIDE_CONFIG_ENV_PREFIXES", "NBA_MCP_:200")
    monkeypatch.setenv("NBA_MCP_API__PAGE_SIZE", "40")
    monkeypatch.setenv("NBA_MCP_CACHE__TTL_SECONDS", "45")
    config.reload()


def test_the_files_and_the_prefix_take_their_places_by_priority(layered, monkeypatch):
    assert [(layer.name, layer.priority) for layer in stack.all_layers()] == [
        ("default", 0), ("file", 100), ("file:app.yaml", 100), ("file:secrets.json", 150),
        ("environment:NBA_MCP_", 200), ("database", 300), ("tenant", 400), ("environment", 500)]
    # app.yaml (100, added after the built-in file layer) wins over base.yaml; each value names its source
    assert (config.get("reports.max_rows"), config.source_of("reports.max_rows")) == (200, "file:app.yaml")
    assert config.source_of("reports.default_season") == "file"
    assert (config.get("api.rate_limit_per_minute"), config.source_of("api.rate_limit_per_minute")) == (
        99, "file:app.yaml")
    assert (config.get("api.page_size"), config.source_of("api.page_size")) == (40, "environment:NBA_MCP_")
    assert config.source_of("cache.ttl_seconds") == "environment:NBA_MCP_"
    config.set("api.page_size", 55)  # the database (300) is above NBA_MCP_ (200)
    assert (config.get("api.page_size"), config.source_of("api.page_size")) == (55, "database")
    monkeypatch.setenv("COURTSIDE_API__PAGE_SIZE", "66")  # COURTSIDE_ (500) still wins last
    config.reload()
    assert (config.get("api.page_size"), config.source_of("api.page_size")) == (66, "environment")
    assert [row["layer"] for row in config.explain("api.page_size")["layers"]] == [
        "default", "file", "file:app.yaml", "file:secrets.json", "environment:NBA_MCP_", "database", "environment"]
    assert config.get("config_files") is None and config.get("config_env_prefixes") is None  # not keys


def test_a_tenant_override_beats_the_files_for_that_tenant_only(layered, two_tenants):
    lakers, warriors = two_tenants
    config.set("reports.max_rows", 700, tenant=lakers)
    assert config.get("reports.max_rows", tenant=lakers) == 700
    assert (config.get("reports.max_rows", tenant=warriors),
            config.source_of("reports.max_rows", tenant=warriors)) == (200, "file:app.yaml")


def test_a_changed_file_is_picked_up_and_a_refused_one_keeps_the_last_good(layered, write_config, settings):
    assert config.get("reports.max_rows") == 200
    write_config("app.yaml", "reports: {max_rows: 250}\n")
    assert config.check_files() is True  # what each process's listener does twice a second
    assert config.get("reports.max_rows") == 250
    write_config("app.yaml", "reports: {max_rows: [not, a, number}\n")
    config.check_files()
    assert config.get("reports.max_rows") == 250  # the last good file stays live
    assert any("app.yaml: cannot parse" in error for error in config.validate())
    write_config("app.yaml", "reports: {max_rows: -5}\n")  # parses, breaks the schema
    config.check_files()
    assert config.get("reports.max_rows") == 250
    assert any("reports.max_rows" in error and "minimum" in error for error in config.validate())
    settings.CONFIGURATION_MAX_FILE_BYTES = 16384  # above the shipped defaults and schemas
    write_config("app.yaml", "reports: {max_rows: 300}\n" + "# padding\n" * 2000)
    config.check_files()
    assert config.get("reports.max_rows") == 250
    assert any("larger than 16384 bytes" in error for error in config.validate())
    assert any(error.id == "configuration.E001" for error in check_configuration())


def test_a_bad_setting_is_reported_and_left_out(write_config, monkeypatch):
    write_config("app.yaml", "reports: {max_rows: 200}\n")
    monkeypatch.setenv("COURTSIDE_CONFIG_FILES", "app.yaml:high,notes.txt:10,app.yaml:120")
    monkeypatch.setenv("COURTSIDE_CONFIG_ENV_PREFIXES", "lower_:5,COURTSIDE_X_:9,NBA_MCP_")
    config.reload()
    names = [layer.name for layer in stack.all_layers()]
    assert "file:app.yaml" in names and "environment:NBA_MCP_" in names
    assert dict((layer.name, layer.priority) for layer in stack.all_layers())["environment:NBA_MCP_"] == 500
    problems = [error.msg for error in check_configuration() if error.id == "configuration.E004"]
    assert len(problems) == 4
    assert any("'app.yaml:high'" in p and "whole number" in p for p in problems)
    assert any("'notes.txt'" in p for p in problems) and any("'lower_'" in p for p in problems)
    assert config.get("reports.max_rows") == 200  # app.yaml:120 is the one kept


def test_the_admin_names_each_values_source_and_the_export_merges_every_layer(layered, operator_client, tmp_path):
    page = operator_client.get("/admin/configuration/configentry/effective/").content.decode()
    assert "<td>reports.max_rows</td><td><code>200</code></td><td>file:app.yaml</td>" in page
    assert "environment:NBA_MCP_ (200)" in page and "file:secrets.json (150)" in page
    assert "sk-file-123" not in page
    config.set("api.rate_limit_per_minute", 5)
    listing = operator_client.get("/admin/configuration/configentry/").content.decode()
    assert "database" in listing
    out = tmp_path / "export.json"
    call_command("config_export", "--format", "json", "-o", str(out), verbosity=0)
    exported = json.loads(out.read_text())
    assert exported["reports"]["max_rows"] == 200 and exported["api"]["page_size"] == 40
    assert exported["cache"]["ttl_seconds"] == 45
    assert exported["integrations"]["stats_provider"]["api_token"] == "********"


def test_the_operator_api_names_each_values_layer_and_lists_every_layers_value(layered, operator_client):
    """configuration/README.md: the API's `source` names the layer (file:<path>, environment:<PREFIX>)."""
    body = operator_client.get("/api/v1/config/keys/reports.max_rows/").json()
    assert (body["value"], body["source"]) == (200, "file:app.yaml")
    assert {"layer": "file", "value": 100} in body["layers"]
    assert {"layer": "file:app.yaml", "value": 200} in body["layers"]
    page_size = operator_client.get("/api/v1/config/keys/api.page_size/").json()
    assert (page_size["value"], page_size["source"]) == (40, "environment:NBA_MCP_")
    rows = {row["key"]: row for row in operator_client.get("/api/v1/config/").json()["keys"]}
    assert rows["cache.ttl_seconds"]["source"] == "environment:NBA_MCP_"
