"""Feature flags: on for listed tenants or a stable percentage of tenants."""

import pytest

from configuration.conf import config, evaluate_flag, flag_bucket

pytestmark = pytest.mark.django_db


def test_a_flag_at_30_percent_is_on_for_a_stable_30_percent_of_1000_tenants():
    spec = {"enabled": True, "percentage": 30}
    names = [f"tenant_{i:04d}" for i in range(1000)]
    on = {name for name in names if evaluate_flag("new_scoring", spec, name)}
    assert 270 <= len(on) <= 330
    assert on == {name for name in names if evaluate_flag("new_scoring", spec, name)}  # stable
    # Raising the percentage only adds tenants: nobody who had the feature loses it.
    on_50 = {name for name in names if evaluate_flag("new_scoring", {"enabled": True, "percentage": 50}, name)}
    assert on <= on_50 and 450 <= len(on_50) <= 550
    # Another flag buckets tenants independently.
    other = {name for name in names if evaluate_flag("dark_mode", spec, name)}
    assert other != on


def test_the_bucket_depends_only_on_flag_and_tenant():
    assert flag_bucket("new_scoring", "lakers") == flag_bucket("new_scoring", "lakers")
    assert 0 <= flag_bucket("new_scoring", "lakers") < 100


def test_flag_rules(two_tenants):
    lakers, warriors = two_tenants
    assert config.flag("new_scoring", tenant=lakers) is False  # the default: disabled
    config.set("flags.new_scoring", {"enabled": True, "tenants": ["lakers"]})
    assert config.flag("new_scoring", tenant=lakers) is True
    assert config.flag("new_scoring", tenant=warriors) is False
    config.set("flags.new_scoring", {"enabled": False, "tenants": ["lakers"], "percentage": 100})
    assert config.flag("new_scoring", tenant=lakers) is False
    config.set("flags.new_scoring", {"enabled": True, "tenants": [], "percentage": 100})
    assert config.flag("new_scoring", tenant=warriors) is True
    config.set("flags.beta_reports", True)
    assert config.flag("beta_reports", tenant="warriors") is True
    assert config.flag("missing_flag", tenant=lakers) is False


def test_an_invalid_flag_is_refused(db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="flags.new_scoring"):
        config.set("flags.new_scoring", {"enabled": True, "percentage": 130})


def test_the_tenant_api_reports_its_flags(two_tenants, lakers_client, warriors_client):
    config.set("flags.new_scoring", {"enabled": True, "tenants": ["lakers"]})
    assert lakers_client.get("/api/v1/config/").json()["flags"]["new_scoring"] is True
    assert warriors_client.get("/api/v1/config/").json()["flags"]["new_scoring"] is False
