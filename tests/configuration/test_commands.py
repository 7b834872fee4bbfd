"""config_export and config_import: formats, environments, tenants, dry run and diff."""

import json

import pytest
import yaml
from django.core.management import CommandError, call_command

from configuration.conf import config
from configuration.models import ConfigChange, ConfigEntry

pytestmark = pytest.mark.django_db


def test_export_merges_the_chosen_environments_files(write_config, capsys):
    write_config("base.yaml", "cache: {ttl_seconds: 100}")
    write_config("production.yaml", "cache: {ttl_seconds: 900}")
    call_command("config_export", "--format", "json", "--env", "production")
    assert json.loads(capsys.readouterr().out)["cache"]["ttl_seconds"] == 900
    call_command("config_export", "--format", "yaml", "--env", "staging")
    assert yaml.safe_load(capsys.readouterr().out)["cache"]["ttl_seconds"] == 100
    assert config.get("cache.ttl_seconds") == 100  # the process's own environment is untouched


def test_export_of_a_tenant_is_that_tenants_view(two_tenants, capsys, tmp_path):
    lakers, warriors = two_tenants
    config.set("branding.welcome_message", "Showtime", tenant=lakers)
    call_command("config_export", "--tenant", "lakers", "--format", "json")
    assert json.loads(capsys.readouterr().out)["branding"]["welcome_message"] == "Showtime"
    out = tmp_path / "warriors.yaml"
    call_command("config_export", "--tenant", "warriors", "--output", str(out))
    assert "Showtime" not in out.read_text()
    with pytest.raises(CommandError, match="No tenant"):
        call_command("config_export", "--tenant", "nobody")


def test_import_dry_run_prints_the_diff_and_writes_nothing(tmp_path, capsys):
    config.set("api.page_size", 40)
    path = tmp_path / "in.yaml"
    path.write_text("api:\n  page_size: 60\n  rate_limit_per_minute: 600\ncache:\n  ttl_seconds: 30\n")
    call_command("config_import", str(path), "--dry-run")
    out = capsys.readouterr().out
    assert "~ api.page_size: 40 -> 60" in out
    assert "~ cache.ttl_seconds: 300 -> 30" in out
    assert "rate_limit_per_minute" not in out  # unchanged
    assert "Dry run: 2 to write, 1 unchanged; nothing written." in out
    assert config.get("api.page_size") == 40
    assert not ConfigEntry.objects.filter(key="cache.ttl_seconds").exists()


def test_import_writes_every_change_with_history(tmp_path, capsys):
    path = tmp_path / "in.json"
    path.write_text(json.dumps({"api": {"page_size": 60}, "reports": {"max_rows": 77}}))
    call_command("config_import", str(path))
    assert "Imported: 2 to write, 0 unchanged." in capsys.readouterr().out
    assert (config.get("api.page_size"), config.get("reports.max_rows")) == (60, 77)
    assert set(ConfigChange.objects.values_list("key", "source", "action")) == {
        ("api.page_size", "import", "import"), ("reports.max_rows", "import", "import")}


def test_import_into_a_tenant_layer(two_tenants, tmp_path):
    lakers, warriors = two_tenants
    path = tmp_path / "in.yaml"
    path.write_text("scoring: {weights: {points: 3.0}}")
    call_command("config_import", str(path), "--tenant", "lakers")
    assert config.get("scoring.weights.points", tenant=lakers) == 3.0
    assert config.get("scoring.weights.points", tenant=warriors) == 1.0


def test_import_refuses_an_unreadable_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("api: [unclosed")
    with pytest.raises(CommandError, match="cannot parse"):
        call_command("config_import", str(path))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("config_import", str(tmp_path / "missing.yaml"))
