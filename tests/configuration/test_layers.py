"""Precedence and deep merge of the five layers, per-environment files and source_of."""

import json

import pytest
from django_tenants.utils import tenant_context

from configuration.conf import config
from configuration.layers import env_key, parse_env_value

# The mark (not only the fixture) so the database is open before the shared autouse fixtures run.
pytestmark = pytest.mark.django_db


def test_code_defaults_are_the_bottom_layer(db):
    assert config.get("cache.ttl_seconds") == 300
    assert config.source_of("cache.ttl_seconds") == "default"
    assert config.get("no.such.key", default="fallback") == "fallback"


def test_each_layer_overrides_the_one_below_and_deep_merges(db, two_tenants, write_config, monkeypatch):
    lakers, _ = two_tenants
    write_config("base.yaml", "scoring:\n  weights:\n    points: 2.0\n    steals: 1.1\n")
    config.set("scoring.weights.rebounds", 3.0)
    config.set("scoring", {"weights": {"assists": 4.0}}, tenant=lakers)
    monkeypatch.setenv("COURTSIDE_SCORING__WEIGHTS__STEALS", "9")
    config.reload()

    weights = config.get("scoring.weights", tenant=lakers)
    # default 1.0 -> file 2.0; default 1.2 -> database 3.0; default 1.5 -> tenant 4.0; file 1.1 -> environment 9
    assert weights == {"points": 2.0, "rebounds": 3.0, "assists": 4.0, "steals": 9}
    assert config.get("scoring.model", tenant=lakers) == "classic"  # untouched keys of the namespace survive
    names = ("points", "rebounds", "assists", "steals")
    sources = [config.source_of(f"scoring.weights.{name}", tenant=lakers) for name in names]
    assert sources == ["file", "database", "tenant", "environment"]
    assert config.source_of("scoring.model", tenant=lakers) == "default"


def test_all_five_layers_on_one_key_the_highest_wins(db, tenant_lakers, write_config, monkeypatch):
    key = "reports.max_rows"
    assert config.get(key, tenant=tenant_lakers) == 10000
    write_config("base.yaml", "reports: {max_rows: 200}")
    config.reload()
    assert (config.get(key, tenant=tenant_lakers), config.source_of(key, tenant=tenant_lakers)) == (200, "file")
    config.set(key, 300)
    assert (config.get(key, tenant=tenant_lakers), config.source_of(key, tenant=tenant_lakers)) == (300, "database")
    config.set(key, 400, tenant=tenant_lakers)
    assert (config.get(key, tenant=tenant_lakers), config.source_of(key, tenant=tenant_lakers)) == (400, "tenant")
    monkeypatch.setenv("COURTSIDE_REPORTS__MAX_ROWS", "500")
    config.reload()
    assert (config.get(key, tenant=tenant_lakers), config.source_of(key, tenant=tenant_lakers)) == (500, "environment")
    explained = config.explain(key, tenant=tenant_lakers)
    assert [(row["layer"], row["value"]) for row in explained["layers"]] == [
        ("default", 10000), ("file", 200), ("database", 300), ("tenant", 400), ("environment", 500)]


def test_the_environment_file_refines_the_base_file(db, write_config, monkeypatch):
    write_config("base.yaml", "api:\n  page_size: 20\n  rate_limit_per_minute: 100\n")
    write_config("production.json", json.dumps({"api": {"page_size": 100}}))
    write_config("staging.yml", "api:\n  page_size: 30\n")

    monkeypatch.setenv("COURTSIDE_ENV", "production")
    config.reload()
    assert config.get("api") == {"page_size": 100, "rate_limit_per_minute": 100}

    monkeypatch.setenv("COURTSIDE_ENV", "staging")
    config.reload()
    assert config.get("api.page_size") == 30

    monkeypatch.delenv("COURTSIDE_ENV")  # development by default: no development file, base only
    config.reload()
    assert config.get("api.page_size") == 20
    assert config.source_of("api.page_size") == "file"


def test_environment_variables_are_typed_nested_and_denylisted(db, monkeypatch):
    monkeypatch.setenv("COURTSIDE_CACHE__STALE_WHILE_REVALIDATE", "true")
    monkeypatch.setenv("COURTSIDE_ADMIN_PASSWORD", "hunter2-hunter2")
    monkeypatch.setenv("COURTSIDE_EMBEDDED_AUTOSTART", "0")
    config.reload()
    assert config.get("cache.stale_while_revalidate") is True
    assert config.get("admin_password") is None
    assert config.get("embedded_autostart") is None
    assert "hunter2-hunter2" not in json.dumps(config.as_dict())


@pytest.mark.parametrize(("name", "key"), [
    ("COURTSIDE_CACHE__TTL_SECONDS", "cache.ttl_seconds"),
    ("COURTSIDE_API_PAGE", "api_page"),
    ("COURTSIDE_ENV", None),
    ("COURTSIDE_DEMO_TENANT_PASSWORD", None),
    ("COURTSIDE_SERVICES_SELF_REGISTER", None),
    ("OTHER_CACHE__TTL", None),
    ("COURTSIDE_BAD____KEY", None),
])
def test_environment_variable_names_map_to_dotted_keys(name, key):
    assert env_key(name) == key


def test_environment_values_parse_like_yaml():
    assert [parse_env_value(v) for v in ("30", "1.5", "false", "[a, b]", "plain text", "")] == [
        30, 1.5, False, ["a", "b"], "plain text", ""]


def test_inside_a_tenant_context_get_returns_that_tenants_view(db, two_tenants):
    lakers, warriors = two_tenants
    config.set("branding.accent_color", "#552583", tenant=lakers)
    with tenant_context(lakers):
        assert config.get("branding.accent_color") == "#552583"
        assert config.source_of("branding.accent_color") == "tenant"
    with tenant_context(warriors):
        assert config.get("branding.accent_color") == "#1d428a"
    assert config.get("branding.accent_color") == "#1d428a"  # the operator view has no tenant layer


def test_a_caller_editing_a_returned_dict_does_not_change_the_configuration(db):
    weights = config.get("scoring.weights")
    weights["points"] = 99
    assert config.get("scoring.weights.points") == 1.0


def test_typed_get_casts(db, monkeypatch):
    monkeypatch.setenv("COURTSIDE_REPORTS__DEFAULT_SEASON", "'2024-25'")
    config.reload()
    assert config.get("reports.max_rows", cast=str) == "10000"
    assert config.get("reports.default_season") == "2024-25"
