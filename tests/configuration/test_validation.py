"""An invalid value is refused everywhere (service, admin, API, file, import) and the old value stays live."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from configuration.conf import config
from configuration.models import ConfigChange, ConfigEntry

# The mark (not only the fixture) so the database is open before the shared autouse fixtures run.
pytestmark = pytest.mark.django_db


def test_the_service_refuses_an_invalid_value_naming_key_and_rule(db):
    config.set("cache.ttl_seconds", 60)
    with pytest.raises(ValidationError) as refused:
        config.set("cache.ttl_seconds", -5)
    message = " ".join(refused.value.messages)
    assert "cache.ttl_seconds" in message and "minimum" in message
    assert config.get("cache.ttl_seconds") == 60
    assert ConfigChange.objects.filter(key="cache.ttl_seconds").count() == 1


def test_a_namespace_schema_checks_a_dict_written_at_once(db):
    with pytest.raises(ValidationError) as refused:
        config.set("branding", {"accent_color": "purple"})
    assert "branding.accent_color" in refused.value.messages[0] and "pattern" in refused.value.messages[0]
    assert not ConfigEntry.objects.exists()


def test_a_malformed_key_is_refused(db):
    with pytest.raises(ValidationError, match="dotted lowercase"):
        config.set("Cache..TTL", 1)


def test_the_operator_admin_refuses_an_invalid_value_with_a_form_error(operator_client):
    config.set("api.page_size", 25)
    entry = ConfigEntry.objects.get(key="api.page_size")
    response = operator_client.post(f"/admin/configuration/configentry/{entry.pk}/change/",
                                    {"value": "9999", "secret": ""})
    assert response.status_code == 200
    assert "api.page_size: 9999 is greater than the maximum of 500 (rule: maximum)" in response.content.decode()
    config.reload()
    assert config.get("api.page_size") == 25

    response = operator_client.post("/admin/configuration/configentry/add/",
                                    {"key": "cache.ttl_seconds", "tenant": "", "value": '"soon"'})
    assert response.status_code == 200 and "(rule: type)" in response.content.decode()
    assert not ConfigEntry.objects.filter(key="cache.ttl_seconds").exists()


def test_the_operator_admin_saves_a_valid_value_with_history(operator_client):
    response = operator_client.post("/admin/configuration/configentry/add/",
                                    {"key": "cache.ttl_seconds", "tenant": "", "value": "42"})
    assert response.status_code == 302
    assert config.get("cache.ttl_seconds") == 42
    change = ConfigChange.objects.get(key="cache.ttl_seconds")
    assert (change.source, change.changed_by, change.new_value) == ("admin", "operator", 42)


def test_the_api_refuses_an_invalid_value_with_the_error_shape(operator_client):
    config.set("reports.max_rows", 500)
    response = operator_client.post("/api/v1/config/entries/", {"key": "reports.max_rows", "value": 0},
                                    content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert "reports.max_rows: 0 is less than the minimum of 1 (rule: minimum)" in error["message"]
    assert config.get("reports.max_rows") == 500


def test_an_invalid_file_is_refused_and_the_previous_file_values_stay_live(db, write_config):
    write_config("base.yaml", "cache: {ttl_seconds: 120}")
    config.reload()
    assert config.get("cache.ttl_seconds") == 120

    write_config("base.yaml", "cache: {ttl_seconds: -1}")
    assert config.check_files() is True
    assert config.get("cache.ttl_seconds") == 120
    assert any("cache.ttl_seconds" in e and "minimum" in e for e in config.validate())

    write_config("base.yaml", "cache: {ttl_seconds: [unclosed")
    config.check_files()
    assert config.get("cache.ttl_seconds") == 120
    assert any("cannot parse" in e for e in config.validate())

    write_config("base.yaml", "cache: {ttl_seconds: 90}")
    config.check_files()
    assert config.get("cache.ttl_seconds") == 90 and config.validate() == []


def test_the_system_check_reports_an_invalid_file(db, write_config):
    from configuration.checks import check_configuration

    write_config("base.yaml", "api: {page_size: many}")
    errors = check_configuration()
    assert [e.id for e in errors] == ["configuration.E002"]
    assert "api.page_size" in errors[0].msg


def test_an_import_with_one_invalid_value_writes_nothing(db, tmp_path):
    config.set("cache.ttl_seconds", 60)
    path = tmp_path / "in.yaml"
    path.write_text("cache:\n  ttl_seconds: 30\napi:\n  page_size: -3\n")
    with pytest.raises(CommandError) as refused:
        call_command("config_import", str(path))
    assert "api.page_size" in str(refused.value) and "nothing written" in str(refused.value)
    assert config.get("cache.ttl_seconds") == 60
    assert not ConfigEntry.objects.filter(key="api.page_size").exists()


def test_a_schema_added_in_the_admin_is_enforced(operator_client):
    response = operator_client.post("/admin/configuration/configschema/add/", {
        "key": "reports.default_season", "schema": '{"type": "string", "pattern": "^2025"}', "description": "x"})
    assert response.status_code == 302, response.content.decode()[:2000]
    with pytest.raises(ValidationError, match="reports.default_season"):
        config.set("reports.default_season", "2019-20")
    response = operator_client.post("/admin/configuration/configschema/add/", {
        "key": "reports.max_rows", "schema": '{"type": "string"}', "description": ""})
    assert response.status_code == 200 and "does not satisfy" in response.content.decode()


def test_the_operator_admin_validates_a_tenant_entry_in_its_tenants_layer(operator_client, tenant_lakers):
    config.set("reports.max_rows", 5, tenant=tenant_lakers)
    entry = ConfigEntry.objects.get(key="reports.max_rows", tenant=tenant_lakers)
    response = operator_client.post(f"/admin/configuration/configentry/{entry.pk}/change/", {"value": "0"})
    assert response.status_code == 200 and "reports.max_rows: 0 is less than the minimum" in response.content.decode()
    response = operator_client.post(f"/admin/configuration/configentry/{entry.pk}/change/", {"value": "6"})
    assert response.status_code == 302
    assert config.get("reports.max_rows", tenant=tenant_lakers) == 6
    assert config.get("reports.max_rows") == 10000
