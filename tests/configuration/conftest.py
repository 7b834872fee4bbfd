"""Fixtures of the configuration tests: a private file directory, a clean cache, no stray variables."""

from __future__ import annotations

import os

import pytest

from configuration.conf import config
from tests.configuration import example_keys


@pytest.fixture(scope="session", autouse=True)
def _stop_config_listener(django_db_setup):
    """The listener holds a connection to the test database: close it before pytest drops the database."""
    yield
    config.stop_listener()


@pytest.fixture(autouse=True)
def config_dir(request, tmp_path, settings, monkeypatch):
    """Each test reads its own config/ directory and environment, and starts from an empty cache."""
    if getattr(request.module, "USES_EXAMPLE_KEYS", True):
        example_keys.install(monkeypatch.setattr)
    directory = tmp_path / "config"
    directory.mkdir()
    settings.CONFIGURATION_DIR = str(directory)
    for name in list(os.environ):
        if name.startswith("COURTSIDE_") and name not in ("COURTSIDE_EMBEDDED_AUTOSTART",):
            monkeypatch.delenv(name)
    config._local.uncommitted = False
    config.unwatch_all()
    config.reload()
    yield directory
    config.unwatch_all()
    config.reload()


@pytest.fixture
def write_config(config_dir):
    """write_config("base.yaml", "cache: {ttl_seconds: 5}") writes a file of the file layer."""

    def write(name: str, text: str):
        path = config_dir / name
        path.write_text(text)
        # A new mtime even within the filesystem's timestamp granularity.
        stat = path.stat()
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
        return path

    return write


@pytest.fixture
def operator_name():
    return "operator"


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for a child process that must use this test database (TCP or the embedded socket)."""
    from tests.conftest import database_url as shared_database_url

    return shared_database_url(settings_dict)
