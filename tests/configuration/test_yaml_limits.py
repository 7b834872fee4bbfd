"""YAML from outside the code (config files, config_import, COURTSIDE_* values) cannot expand without bound.

A 359-byte file of nine nested aliases used to hang config_import for more than
two minutes (six levels: three seconds): the loader now refuses alias expansion
past a small bound, recursive aliases, nesting past a depth and texts past a size.
"""

import pytest
from django.core.management import CommandError, call_command

from configuration import layers
from configuration.conf import config
from configuration.models import ConfigEntry

pytestmark = pytest.mark.django_db


def alias_bomb(levels: int, *, key: str = "a") -> str:
    """Each level is a list of nine aliases of the level below: 9**levels strings from a few hundred bytes."""
    lines = [f'{key}0: &{key}0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        lines.append(f"{key}{level}: &{key}{level} [" + ",".join([f"*{key}{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_config_import_refuses_a_six_level_alias_bomb_and_writes_nothing(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text("api:\n  page_size: 60\nbomb:\n" + "".join(f"  {line}\n" for line in alias_bomb(6).splitlines()))
    with pytest.raises(CommandError, match="alias"):
        call_command("config_import", str(path))
    assert not ConfigEntry.objects.exists()
    assert config.get("api.page_size") != 60


def test_config_import_refuses_the_nine_level_bomb_of_the_issue(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(alias_bomb(9))
    with pytest.raises(CommandError, match=r"bomb\.yaml.*alias"):
        call_command("config_import", str(path))
    assert not ConfigEntry.objects.exists()


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("a: &loop\n  - *loop\n")
    with pytest.raises(CommandError, match="recursive alias"):
        call_command("config_import", str(path))


def test_a_few_ordinary_aliases_still_load(tmp_path, capsys):
    path = tmp_path / "anchors.yaml"
    path.write_text(
        "base: &weights {points: 2.0, rebounds: 1.5}\n"
        "scoring:\n  weights:\n    <<: *weights\n    assists: 1.7\n"
    )
    data = layers.parse_text(path.read_text(), name=path.name)
    assert data["scoring"]["weights"] == {"points": 2.0, "rebounds": 1.5, "assists": 1.7}


def test_nesting_past_the_depth_bound_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(CommandError, match="nested deeper"):
        call_command("config_import", str(path))
    deep_json = tmp_path / "deep.json"
    deep_json.write_text('{"a": ' + "[" * 50000 + "]" * 50000 + "}")
    with pytest.raises(CommandError, match="nested deeper"):
        call_command("config_import", str(deep_json))


def test_a_file_past_the_size_bound_is_refused(tmp_path, settings):
    settings.CONFIGURATION_MAX_FILE_BYTES = 1000
    path = tmp_path / "big.yaml"
    path.write_text("notes: '" + "x" * 2000 + "'\n")
    with pytest.raises(CommandError, match="larger than 1000 bytes"):
        call_command("config_import", str(path))


def test_a_config_file_with_a_bomb_is_refused_and_the_last_good_file_stays_live(write_config):
    write_config("base.yaml", "cache: {ttl_seconds: 45}\n")
    assert config.get("cache.ttl_seconds") == 45
    write_config("base.yaml", "cache: {ttl_seconds: 46}\n" + alias_bomb(9))
    config.invalidate()
    assert config.get("cache.ttl_seconds") == 45
    errors = config.validate()
    assert any("base.yaml" in error and "alias" in error for error in errors), errors


def test_the_system_check_reports_a_bomb_in_a_config_file(write_config):
    from configuration.checks import check_configuration

    write_config("base.yaml", alias_bomb(9))
    messages = [(error.id, error.msg) for error in check_configuration()]
    assert any(code == "configuration.E001" and "alias" in msg for code, msg in messages), messages


def test_an_environment_value_with_a_bomb_stays_a_plain_string(monkeypatch):
    flow = "[" + ", ".join(f"&x{i} [" + ", ".join([f"*x{i - 1}"] * 9 if i else ['"lol"'] * 9) + "]"
                           for i in range(9)) + "]"
    monkeypatch.setenv("COURTSIDE_NOTES__BOMB", flow)
    config.reload()
    assert config.get("notes.bomb") == flow
    assert layers.parse_env_value("[1, 2]") == [1, 2]
