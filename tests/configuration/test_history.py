"""Every change is recorded with old and new value, who, when and source; rollback restores an earlier version."""

import pytest
from django.core.exceptions import ValidationError

from configuration import services
from configuration.conf import config
from configuration.models import ConfigChange, ConfigEntry

# The mark (not only the fixture) so the database is open before the shared autouse fixtures run.
pytestmark = pytest.mark.django_db


def test_every_change_is_recorded_with_old_and_new_value_who_and_source(db):
    config.set("api.page_size", 20, changed_by="alice", source="api")
    config.set("api.page_size", 30, changed_by="bob", source="admin")
    config.set("api.page_size", 30, changed_by="bob", source="admin")  # no change, no history row
    config.delete("api.page_size", changed_by="carol")
    rows = list(ConfigChange.objects.filter(key="api.page_size").order_by("version"))
    assert [(r.version, r.action, r.old_value, r.new_value, r.changed_by, r.source) for r in rows] == [
        (1, "set", None, 20, "alice", "api"),
        (2, "set", 20, 30, "bob", "admin"),
        (3, "delete", 30, None, "carol", "code"),
    ]
    assert all(r.changed_at is not None for r in rows)
    assert config.get("api.page_size") == 50  # the default shows again


def test_rollback_restores_an_earlier_version_and_is_itself_recorded(db):
    for size in (10, 20, 30):
        config.set("api.page_size", size)
    first = ConfigChange.objects.get(key="api.page_size", version=1)
    services.entry_rollback(change_id=first.pk, changed_by="operator")
    assert config.get("api.page_size") == 10
    latest = ConfigChange.objects.filter(key="api.page_size").order_by("-version").first()
    assert (latest.version, latest.action, latest.old_value, latest.new_value) == (4, "rollback", 30, 10)


def test_rollback_to_a_deleted_version_removes_the_entry(db):
    config.set("api.page_size", 10)
    config.delete("api.page_size")
    config.set("api.page_size", 40)
    deleted = ConfigChange.objects.get(key="api.page_size", action="delete")
    services.entry_rollback(change_id=deleted.pk)
    assert not ConfigEntry.objects.filter(key="api.page_size").exists()
    assert config.get("api.page_size") == 50


def test_a_rollback_to_a_value_the_schema_now_refuses_changes_nothing(db):
    config.set("reports.default_season", "2019-20")
    config.set("reports.default_season", "2025-26")
    services.schema_set(key="reports.default_season", schema={"type": "string", "pattern": "^2025"})
    old = ConfigChange.objects.get(key="reports.default_season", version=1)
    with pytest.raises(ValidationError, match="pattern"):
        services.entry_rollback(change_id=old.pk)
    assert config.get("reports.default_season") == "2025-26"


def test_the_admin_shows_a_diff_and_rolls_back(operator_client):
    config.set("scoring.weights", {"points": 1.0, "rebounds": 2.0})
    config.set("scoring.weights", {"points": 1.0, "rebounds": 5.0})
    first, second = ConfigChange.objects.filter(key="scoring.weights").order_by("version")

    page = operator_client.get(f"/admin/configuration/configchange/{second.pk}/change/").content.decode()
    assert "-  &quot;rebounds&quot;: 2.0" in page and "+  &quot;rebounds&quot;: 5.0" in page
    assert "Roll back to this version" in page

    response = operator_client.post(f"/admin/configuration/configchange/{first.pk}/rollback/")
    assert response.status_code == 302
    assert config.get("scoring.weights.rebounds") == 2.0
    latest = ConfigChange.objects.filter(key="scoring.weights").order_by("-version").first()
    assert (latest.action, latest.changed_by, latest.source) == ("rollback", "operator", "rollback")


def test_the_api_lists_history_and_rolls_back(operator_client):
    config.set("cache.ttl_seconds", 11)
    config.set("cache.ttl_seconds", 22)
    history = operator_client.get("/api/v1/config/history/?key=cache.ttl_seconds").json()["results"]
    assert [(h["version"], h["old_value"], h["new_value"]) for h in history] == [(2, 11, 22), (1, None, 11)]
    response = operator_client.post(f"/api/v1/config/history/{history[1]['id']}/rollback/")
    assert response.status_code == 200 and response.json()["value"] == 11
    assert config.get("cache.ttl_seconds") == 11
