"""Production settings refuse to start without their secrets and pass check --deploy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "backoffice.settings.production",
    "SECRET_KEY": "x7#kq9!vz2@pl4$mn8^tr6&yb3*wd5(hc1)fj0-ge_s+ua=oi~ZLXCVBNMASDFGHJKQWERTY",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/courtside_check",
    "ALLOWED_HOSTS": "courtside.example,.courtside.example",
    # Two Fernet keys, newest first (test values, never used anywhere else).
    "COURTSIDE_SECRET_KEYS": ",".join(["Qk4cYbqvTJ3vWZ5m0hJ9o4b2tQ3y7r8xJ1c2d3e4f5g=",
                                       "c2VjcmV0LWtleXMtZm9yLXRoZS1jaGVjay10ZXN0LSE="]),
}


def _manage(*args, env):
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY", "COURTSIDE_SECRET_KEYS")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("missing", ["SECRET_KEY", "DATABASE_URL", "COURTSIDE_SECRET_KEYS"])
def test_production_refuses_to_start_without(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr


def test_embedded_database_command_reports_the_server(db):
    if os.environ.get("DATABASE_URL"):
        result = _manage("embedded_db", "status", env={"DATABASE_URL": os.environ["DATABASE_URL"]})
        assert result.returncode != 0 and "DATABASE_URL is set" in result.stderr
        return
    result = _manage("embedded_db", "status", env={"DJANGO_SETTINGS_MODULE": "backoffice.settings.local"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("running")
