"""Hot reload: a change committed by one process reaches a second, separate process within 1 s."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from configuration.conf import config
from tests.configuration.conftest import database_url

READER = Path(__file__).with_name("_reader.py")

# The mark (not only the fixture) so the database is open before the shared autouse fixtures run.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reader(transactional_db, config_dir):
    """Start the reader process on the test database; yield a function that waits for its next value."""
    processes = []

    def start(key: str, seconds: float = 30, mode: str = "poll"):
        env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict),
               "COURTSIDE_CONFIG_DIR": str(config_dir), "DJANGO_SETTINGS_MODULE": "backoffice.settings.test"}
        process = subprocess.Popen([sys.executable, str(READER), key, str(seconds), mode], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env)
        processes.append(process)
        lines = []

        def pump():
            for line in process.stdout:
                lines.append(json.loads(line))

        threading.Thread(target=pump, daemon=True).start()

        def next_value(index: int, timeout: float):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if len(lines) > index:
                    return lines[index]
                if process.poll() is not None and len(lines) <= index:
                    break
                time.sleep(0.005)
            return None

        first = next_value(0, 60)  # startup: Django setup and the listener's connection, not measured
        assert first and first.get("ready"), (first, process.stderr.read() if process.poll() is not None else "")
        return first, next_value

    yield start
    for process in processes:
        process.kill()
        process.wait()


def test_a_change_in_this_process_reaches_another_process_within_one_second(reader):
    config.set("reports.max_rows", 1234)
    first, next_value = reader("reports.max_rows")
    assert first["value"] == 1234

    for index, value in enumerate((4321, 999), start=1):
        config.set("reports.max_rows", value, changed_by="test")  # committed when it returns
        committed = time.monotonic()
        seen = next_value(index, timeout=10.0)  # wait longer, so a miss and a slow delivery read differently
        assert seen is not None, f"the reader never saw {value}"
        assert seen["value"] == value
        # The promise: seen within 1 s of the save (CLOCK_MONOTONIC is system-wide on Linux).
        # bench/config.py measures the actual figure (tens of milliseconds here).
        assert seen["at"] - committed <= 1.0


def test_a_tenant_override_reaches_another_process_in_that_tenants_view_only(reader, tenant_lakers):
    first, next_value = reader("branding.accent_color")
    assert first["value"] == "#1d428a"  # the reader runs in the public schema: operator view
    config.set("branding.accent_color", "#552583", tenant=tenant_lakers)
    config.set("branding.accent_color", "#000000")
    committed = time.monotonic()
    seen = next_value(1, timeout=10.0)
    assert seen is not None and seen["value"] == "#000000"  # the Lakers' override never reached this view
    assert seen["at"] - committed <= 1.0


def test_a_changed_file_is_picked_up_without_a_restart(transactional_db, write_config):
    write_config("base.yaml", "api: {page_size: 70}")
    config.reload()
    assert config.get("api.page_size") == 70
    assert config.listener_ready(timeout=10)
    write_config("base.yaml", "api: {page_size: 80}")
    deadline = time.monotonic() + 5
    while config.get("api.page_size") != 80 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert config.get("api.page_size") == 80


def test_a_watcher_in_another_process_fires_once_per_change(reader):
    first, next_value = reader("api.page_size", mode="watch")
    assert first["value"] == 50
    config.set("api.page_size", 60)
    assert next_value(1, timeout=10.0) == {"key": "api.page_size", "old": 50, "new": 60}
    config.set("api.page_size", 70)
    config.set("cache.ttl_seconds", 10)  # another key: no call
    assert next_value(2, timeout=10.0) == {"key": "api.page_size", "old": 60, "new": 70}
    assert next_value(3, timeout=1.0) is None  # and no second call for the same change


def test_an_encrypted_secret_reaches_another_process_decrypted(reader):
    """Secrets are stored encrypted; another process decrypts them once, when it rebuilds its snapshot."""
    key = "integrations.stats_provider.api_token"
    config.set(key, "sk-first-1111")
    first, next_value = reader(key)
    assert first["value"] == "sk-first-1111"
    config.set(key, "sk-second-2222")
    seen = next_value(1, timeout=10.0)
    assert seen is not None and seen["value"] == "sk-second-2222"
    with connection.cursor() as cursor:
        cursor.execute("SELECT value::text FROM configuration_configentry WHERE key = %s", [key])
        assert "sk-second-2222" not in cursor.fetchone()[0]
