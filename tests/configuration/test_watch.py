"""Watchers and the config_changed signal fire exactly once per change, with old and new values."""

import time

import pytest

from configuration.conf import config
from configuration.signals import config_changed

# The mark (not only the fixture) so the database is open before the shared autouse fixtures run.
pytestmark = pytest.mark.django_db(transaction=True)


def test_a_watcher_fires_exactly_once_per_change(transactional_db, tenant_lakers):
    calls = []
    watcher = config.watch("cache", lambda key, old, new: calls.append((key, old, new)))
    assert config.listener_ready(timeout=10)  # the listener sees each NOTIFY too: it must not fire again

    config.set("cache.ttl_seconds", 10)
    config.set("cache.ttl_seconds", 20)
    config.set("api.page_size", 10)  # not watched
    config.set("reports.max_rows", 5, tenant=tenant_lakers)  # another view
    time.sleep(1.0)  # let every NOTIFY arrive: duplicates would show up here

    assert [(old["ttl_seconds"], new["ttl_seconds"]) for _, old, new in calls] == [(300, 10), (10, 20)]
    assert {key for key, _, _ in calls} == {"cache"}

    watcher.cancel()
    config.set("cache.ttl_seconds", 30)
    time.sleep(0.3)
    assert len(calls) == 2


def test_a_tenant_watcher_sees_its_tenants_view(transactional_db, two_tenants):
    lakers, warriors = two_tenants
    calls = []
    config.watch("branding.accent_color", lambda key, old, new: calls.append((old, new)), tenant=lakers)
    config.set("branding.accent_color", "#000001", tenant=warriors)
    config.set("branding.accent_color", "#552583", tenant=lakers)
    assert calls == [("#1d428a", "#552583")]


def test_the_signal_is_sent_once_per_changed_key(transactional_db):
    received = []

    def receiver(sender, key, old, new, tenant, **kwargs):
        received.append((key, old, new, tenant))

    config_changed.connect(receiver)
    try:
        config.get("api.page_size")  # the operator view's baseline
        config.set("api", {"page_size": 25, "rate_limit_per_minute": 10})
        time.sleep(0.5)
    finally:
        config_changed.disconnect(receiver)
    assert sorted(received) == [
        ("api.page_size", 50, 25, "public"), ("api.rate_limit_per_minute", 600, 10, "public")]
