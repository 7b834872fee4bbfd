"""Example keys of the configuration tests, which the product no longer ships.

The layer, history, watch, hot-reload and masking tests were written with
`branding.accent_color` (a tenant-editable colour with a pattern) and
`integrations.stats_provider.{url,api_token}` (a credential masked by its
name) as their examples. Nothing in the product read them, so issue 13.3
removed them from configuration/defaults/ (the tenant's colour is
Tenant.primary_color); these tests keep their assertions by getting the
same keys, defaults and schemas from here, deep-merged over the product's.
A test module that must see the product's keys only sets
`USES_EXAMPLE_KEYS = False`.
"""

from __future__ import annotations

from configuration import layers

DEFAULTS = {
    "branding": {"accent_color": "#1d428a"},
    "integrations": {"stats_provider": {"url": "https://stats.example.invalid/v1", "api_token": ""}},
}

SCHEMAS = {
    "branding": {"schema": {"properties": {"accent_color": {"type": "string", "pattern": "^#[0-9a-fA-F]{6}$"}}}},
    "integrations": {"description": "Third-party services (test example); credentials are secret.",
                     "schema": {"type": "object"}},
    "integrations.stats_provider": {
        "description": "A stats feed (test example); api_token is masked by its name.",
        "schema": {"type": "object", "properties": {"url": {"type": "string", "format": "uri"},
                                                    "api_token": {"type": "string"}}},
    },
}

_product_defaults = layers.load_defaults
_product_schemas = layers.load_code_schemas


def with_example_defaults() -> dict:
    return layers.deep_merge(_product_defaults(), DEFAULTS)


def with_example_schemas() -> dict:
    return layers.deep_merge(_product_schemas(), SCHEMAS)


def install(setattr_=setattr) -> None:
    """Make the code layer ship the example keys too (setattr_ may be monkeypatch.setattr)."""
    setattr_(layers, "load_defaults", with_example_defaults)
    setattr_(layers, "load_code_schemas", with_example_schemas)
