"""The one precedence list, and a new kind of layer added in this one file (issue 15: at most two files).

The example layer is a mapping held in memory, a stand-in for any source (a
vault, a remote store): a Layer subclass and one stack.register() call. Reads,
the winning layer, explain(), the effective listing, write validation and the
polling of changes all pick it up without touching anything else.
"""

from __future__ import annotations

import pytest

from configuration import stack
from configuration.conf import config

pytestmark = pytest.mark.django_db


class MemoryLayer(stack.Layer):
    """Values from a dict; its version is the signature the listener polls."""

    def __init__(self, name: str, priority: int, values: dict):
        self.name, self.priority, self.values, self.version = name, priority, values, 0

    def tree(self, view):
        return dict(self.values)

    def signature(self):
        return self.version


@pytest.fixture
def memory_layer():
    layer = stack.register(MemoryLayer("memory", 350, {"reports": {"max_rows": 777}}))
    config.reload()
    yield layer
    stack.unregister(layer)
    config.reload()


def test_the_built_in_layers_form_one_list_by_priority():
    assert [(layer.name, layer.priority) for layer in stack.all_layers()] == [
        ("default", 0), ("file", 100), ("database", 300), ("tenant", 400), ("environment", 500)]
    assert [layer.name for layer in stack.layers_of("public")] == ["default", "file", "database", "environment"]


def test_a_registered_layer_takes_its_place_by_priority(memory_layer, tenant_lakers, monkeypatch):
    assert (config.get("reports.max_rows"), config.source_of("reports.max_rows")) == (777, "memory")
    config.set("reports.max_rows", 300)  # the database layer (300) is below the memory layer (350)
    assert config.get("reports.max_rows") == 777
    config.set("reports.max_rows", 400, tenant=tenant_lakers)  # the tenant layer (400) is above it
    assert (config.get("reports.max_rows", tenant=tenant_lakers),
            config.source_of("reports.max_rows", tenant=tenant_lakers)) == (400, "tenant")
    explained = config.explain("reports.max_rows", tenant=tenant_lakers)
    assert [row["layer"] for row in explained["layers"]] == ["default", "database", "memory", "tenant"]
    assert {"key": "reports.max_rows", "value": 777, "source": "memory", "secret": False} in config.effective()


def test_a_registered_layer_is_validated_on_write_and_its_changes_are_polled(memory_layer):
    assert config.get("reports.max_rows") == 777
    memory_layer.values = {"reports": {"max_rows": -1}}  # breaks the key's schema (minimum 1)
    memory_layer.version += 1
    assert config.check_files() is True  # what the listener thread does twice a second
    assert config.get("reports.max_rows") == -1
    with pytest.raises(Exception) as refused:
        config.set("reports.max_rows", 10)  # a write is validated with the layers above it
    assert "reports.max_rows" in str(refused.value)
    assert config.check_files() is False


def test_a_layer_name_is_unique():
    with pytest.raises(ValueError, match="exists already"):
        stack.register(MemoryLayer("database", 1, {}))
