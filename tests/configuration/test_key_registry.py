"""Every shipped key has a reader that drives behaviour, and a line in the docs; removed keys are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from configuration import config, keys, layers

ROOT = Path(__file__).resolve().parents[2]
USES_EXAMPLE_KEYS = False  # the product's keys only (see example_keys.py)


def _shipped_keys() -> set[str]:
    return set(layers.leaves(layers.parse_text((layers.DEFAULTS_DIR / "defaults.yaml").read_text(),
                                               name="defaults.yaml")))


def test_every_key_shipped_in_the_defaults_has_exactly_one_reader():
    # flags.<name> ships as a dict spec; the reader is config.flag(name), registered under its key.
    shipped = {key for key in _shipped_keys() if not key.startswith("flags.")}
    shipped |= {f"flags.{name}" for name in layers.parse_text(
        (layers.DEFAULTS_DIR / "defaults.yaml").read_text(), name="defaults.yaml").get("flags", {})}
    assert shipped == set(keys.READERS)


@pytest.mark.parametrize("doc", ["configuration/README.md", "README.md"])
def test_every_key_is_documented_with_what_it_drives(doc):
    text = (ROOT / doc).read_text()
    missing = sorted(key for key in keys.READERS if f"`{key}`" not in text)
    assert missing == []


@pytest.mark.parametrize(("key", "value"), [
    ("branding.accent_color", "#552583"),
    ("cache.stale_while_revalidate", True),
    ("api.page_sise", 20),
])
def test_keys_nothing_reads_are_refused(db, key, value):
    with pytest.raises(ValidationError) as refused:
        config.set(key, value)
    assert key.split(".")[0] in refused.value.messages[0]
