"""Secret configuration values are encrypted at rest (Fernet, keys from COURTSIDE_SECRET_KEYS) and rotatable.

A database dump must not reveal a secret: the tests read every table of every
schema with SQL and look for each secret in clear.
"""

import json
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import CommandError, call_command
from django.db import connection

from configuration import services
from configuration.conf import config
from configuration.models import ConfigChange, ConfigEntry

pytestmark = pytest.mark.django_db

TOKEN = "sk-live-token-8f1d2c"
OLD_TOKEN = "sk-old-token-17aa3b"
MARKED = "marked-secret-note-5531"
BY_SCHEMA = "account-by-schema-6620"
LATE_SCHEMA = "account-before-schema-7741"
IN_A_LIST = "backup-password-in-a-list-9902"
DELETED = "deleted-smtp-password-4418"
TENANT_TOKEN = "lakers-only-api-key-3307"
ALL_SECRETS = (TOKEN, OLD_TOKEN, MARKED, BY_SCHEMA, LATE_SCHEMA, IN_A_LIST, DELETED, TENANT_TOKEN)


def tables_holding(text: str) -> list[str]:
    """Every table, in every schema, with a row whose text contains `text`: what a dump would show."""
    found = []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        for schema, table in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM "{schema}"."{table}" AS t WHERE t::text LIKE %s', [f"%{text}%"])
            if cursor.fetchone()[0]:
                found.append(f"{schema}.{table}")
    return found


def store_every_kind_of_secret(lakers):
    config.set("integrations.stats_provider.api_token", OLD_TOKEN)  # secret by its name
    config.set("integrations.stats_provider.api_token", TOKEN)  # the old value lives on in the history
    config.set("integrations.webhook", {"url": "https://hooks.example.invalid", "note": MARKED}, secret=True)
    services.schema_set(key="billing", schema={"type": "object"}, secret=True)
    config.set("billing.account", BY_SCHEMA)  # secret by a schema
    config.set("ledger.account", LATE_SCHEMA)  # stored in clear, then its schema says secret
    services.schema_set(key="ledger", schema={"type": "object"}, secret=True)
    config.set("integrations.backups", [{"host": "h", "password": IN_A_LIST}])  # inside a list
    config.set("integrations.smtp_password", DELETED)
    config.delete("integrations.smtp_password")  # the deleted value lives on in the history
    config.set("integrations.partner_api_key", TENANT_TOKEN, tenant=lakers)  # a tenant's override
    config.set("cache.ttl_seconds", 77)  # not secret: stays readable in the database


def assert_everything_reads_back(lakers):
    config.reload()
    assert config.get("integrations.stats_provider.api_token") == TOKEN
    assert config.get("integrations.webhook.note") == MARKED
    assert config.get("billing.account") == BY_SCHEMA
    assert config.get("ledger.account") == LATE_SCHEMA
    assert config.get("integrations.backups") == [{"host": "h", "password": IN_A_LIST}]
    assert config.get("integrations.partner_api_key", tenant=lakers) == TENANT_TOKEN
    assert config.get("integrations.partner_api_key") is None
    history = ConfigChange.objects.filter(key="integrations.stats_provider.api_token").order_by("version")
    assert [(c.old_value, c.new_value) for c in history] == [(None, OLD_TOKEN), (OLD_TOKEN, TOKEN)]
    deleted = ConfigChange.objects.get(key="integrations.smtp_password", exists_after=False)
    assert deleted.old_value == DELETED


def test_no_secret_is_stored_in_clear_anywhere_in_the_database(tenant_lakers):
    store_every_kind_of_secret(tenant_lakers)
    for secret in ALL_SECRETS:
        assert tables_holding(secret) == [], secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT value::text FROM configuration_configentry WHERE key = 'cache.ttl_seconds'")
        assert cursor.fetchone()[0] == "77"  # what is not secret stays plain
        cursor.execute("SELECT value FROM configuration_configentry WHERE key = 'integrations.backups'")
        stored = cursor.fetchone()[0]
    stored = json.loads(stored) if isinstance(stored, str) else stored
    assert list(stored) == ["$fernet"] and stored["$fernet"].startswith("gAAAA")
    assert_everything_reads_back(tenant_lakers)


def test_rotating_keys_re_encrypts_everything_and_the_old_key_can_go(tenant_lakers, settings):
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.CONFIGURATION_SECRET_KEYS = [old_key]
    config.reload()
    store_every_kind_of_secret(tenant_lakers)

    settings.CONFIGURATION_SECRET_KEYS = [new_key, old_key]  # the new key first: it encrypts from now on
    assert_everything_reads_back(tenant_lakers)
    status = StringIO()
    call_command("config_secrets", "status", stdout=status)
    assert "need `manage.py config_secrets rotate`" in status.getvalue()
    out = StringIO()
    call_command("config_secrets", "rotate", stdout=out, stderr=StringIO())
    assert "Rotated:" in out.getvalue()

    settings.CONFIGURATION_SECRET_KEYS = [new_key]  # the old key removed
    assert_everything_reads_back(tenant_lakers)
    with connection.cursor() as cursor:
        cursor.execute("SELECT value::text FROM configuration_configentry UNION ALL "
                       "SELECT old_value::text FROM configuration_configchange UNION ALL "
                       "SELECT new_value::text FROM configuration_configchange")
        tokens = [json.loads(raw)["$fernet"] for (raw,) in cursor.fetchall() if raw and "$fernet" in raw]
    assert len(tokens) >= 14
    for token in tokens:
        Fernet(new_key).decrypt(token.encode())  # every one opens with the new key alone
    status = StringIO()
    call_command("config_secrets", "status", stdout=status)
    assert "Every stored secret is encrypted with the newest key." in status.getvalue()
    for secret in ALL_SECRETS:
        assert tables_holding(secret) == [], secret


def test_a_missing_key_is_a_clear_error_not_a_wrong_value(tenant_lakers, settings):
    settings.CONFIGURATION_SECRET_KEYS = [Fernet.generate_key().decode()]
    config.reload()
    config.set("integrations.stats_provider.api_token", TOKEN)
    settings.CONFIGURATION_SECRET_KEYS = [Fernet.generate_key().decode()]
    config.reload()
    with pytest.raises(ImproperlyConfigured, match="COURTSIDE_SECRET_KEYS"):
        config.get("integrations.stats_provider.api_token")
    for action in ("status", "rotate"):
        out = StringIO()
        with pytest.raises(CommandError, match=r"2 stored value\(s\) cannot be decrypted with COURTSIDE_SECRET_KEYS"):
            call_command("config_secrets", action, stdout=out, stderr=StringIO())
        assert "no configured key opens it" in out.getvalue()


def test_validation_sees_the_plain_values(db):
    services.schema_set(key="integrations.stats_provider.api_token", schema={"type": "string", "pattern": "^(sk-.*)?$"})
    with pytest.raises(ValidationError, match="pattern"):
        config.set("integrations.stats_provider.api_token", "not-a-token")
    config.set("integrations.stats_provider.api_token", TOKEN)
    assert config.validate() == []
    assert config.get("integrations.stats_provider.api_token") == TOKEN
    assert tables_holding(TOKEN) == []


def test_rolling_back_to_an_encrypted_version_restores_the_plain_value(db):
    config.set("integrations.stats_provider.api_token", OLD_TOKEN)
    config.set("integrations.stats_provider.api_token", TOKEN)
    first = ConfigChange.objects.get(key="integrations.stats_provider.api_token", version=1)
    services.entry_rollback(change_id=first.pk, changed_by="test")
    assert config.get("integrations.stats_provider.api_token") == OLD_TOKEN
    assert tables_holding(OLD_TOKEN) == []


def test_an_envelope_sent_as_a_value_is_refused(db):
    with pytest.raises(ValidationError, match="reserved"):
        config.set("integrations.note", {"$fernet": "gAAAAforged"})
    assert not ConfigEntry.objects.filter(key="integrations.note").exists()


def test_invalid_keys_are_a_system_check_error(settings):
    from configuration.checks import check_configuration

    settings.CONFIGURATION_SECRET_KEYS = ["not-a-fernet-key"]
    assert "configuration.E003" in [error.id for error in check_configuration()]
    settings.CONFIGURATION_SECRET_KEYS = []
    assert "configuration.E003" in [error.id for error in check_configuration()]


@pytest.mark.parametrize("module", ["local", "test"])
def test_development_and_tests_derive_a_key_from_their_own_secret_key(module):
    """`make run` and `make test` work with no variable set: the key comes from their dev-only SECRET_KEY."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from backoffice.settings.environment import derived_secret_key

    env = {k: v for k, v in os.environ.items() if k not in ("COURTSIDE_SECRET_KEYS", "SECRET_KEY")}
    env.update(COURTSIDE_EMBEDDED_AUTOSTART="0", DATABASE_URL=env.get("DATABASE_URL") or "postgres://x@127.0.0.1/x")
    script = (f"import json, backoffice.settings.{module} as s; "
              "print(json.dumps([s.SECRET_KEY, s.CONFIGURATION_SECRET_KEYS]))")
    result = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    secret_key, keys = json.loads(result.stdout.strip().splitlines()[-1])
    assert keys == [derived_secret_key(secret_key)]
    Fernet(keys[0])  # a valid Fernet key
    assert derived_secret_key("one") != derived_secret_key("two")


def test_generate_key_prints_a_fernet_key():
    out = StringIO()
    call_command("config_secrets", "generate-key", stdout=out)
    Fernet(out.getvalue().strip())


def test_signal_receivers_see_the_plain_value_while_the_row_holds_the_envelope(db):
    """The audit log (a post_save receiver) masks what it records: it must be handed the plain value, not a token."""
    from django.db.models.signals import post_save

    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.value)

    post_save.connect(receiver, sender=ConfigEntry, dispatch_uid="tests.sealing.seen")
    try:
        entry = services.entry_set(key="integrations.smtp_password", value="pw-seen-by-signals")
    finally:
        post_save.disconnect(sender=ConfigEntry, dispatch_uid="tests.sealing.seen")
    assert seen == ["pw-seen-by-signals"] and entry.value == "pw-seen-by-signals"
    assert tables_holding("pw-seen-by-signals") == []


def test_rotating_keys_re_encrypts_a_health_checks_secret_too(db, settings):
    from django_tenants.utils import schema_context

    from registry import registration
    from registry.kinds import _secrets
    from registry.models import HealthCheck

    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    dsn = "host=db.internal dbname=app user=monitor password=pg-check-s3cret"
    settings.CONFIGURATION_SECRET_KEYS = [old_key]
    with schema_context("public"):
        registration.service_register(service_id="db-monitored", name="db", host="db.internal", port=5432,
                                      checks=[{"type": "postgres", "name": "db", "dsn": dsn}])
        settings.CONFIGURATION_SECRET_KEYS = [new_key, old_key]
        call_command("config_secrets", "rotate", stdout=StringIO(), stderr=StringIO())
        settings.CONFIGURATION_SECRET_KEYS = [new_key]  # the old key removed
        check = HealthCheck.objects.get(instance__service_id="db-monitored")
        assert json.loads(Fernet(new_key).decrypt(check.secret["$fernet"].encode())) == dsn  # the new key alone
        assert _secrets.unseal(check.secret) == dsn
