"""A/B experiments: weighted variants, sticky assignment, overrides, the kill switch, batched exposures (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from configuration import experiments, services
from configuration.conf import config
from configuration.experiments import choose
from configuration.models import ExperimentExposure
from tests.configuration.conftest import database_url

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
SPEC = {"enabled": True, "control": "classic", "variants": {"classic": 50, "compact": 30, "wide": 20}}


@pytest.fixture(autouse=True)
def _no_pending_counts():
    experiments.exposures.discard()
    yield
    experiments.exposures.discard()


@pytest.fixture
def score_card(db):
    config.set("experiments.score_card", SPEC)
    return "score_card"


def test_weights_split_subjects_and_each_subject_keeps_its_variant():
    subjects = [f"tenant_{i}" for i in range(4000)]
    first = {s: choose("score_card", SPEC, s)[0] for s in subjects}
    shares = Counter(first.values())
    # 50/30/20 within two points over 4000 subjects
    assert abs(shares["classic"] / 40 - 50) < 2 and abs(shares["compact"] / 40 - 30) < 2
    assert abs(shares["wide"] / 40 - 20) < 2
    assert {s: choose("score_card", SPEC, s)[0] for s in subjects} == first  # sticky
    # a key order stored differently (jsonb sorts keys) assigns the same
    reordered = {**SPEC, "variants": dict(reversed(list(SPEC["variants"].items())))}
    assert {s: choose("score_card", reordered, s)[0] for s in subjects} == first
    # per user: users of one tenant spread over the variants, each user sticky
    users = {u: choose("score_card", SPEC, "lakers", u)[0] for u in range(300)}
    assert set(users.values()) == {"classic", "compact", "wide"}
    assert users == {u: choose("score_card", SPEC, "lakers", u)[0] for u in range(300)}


@pytest.mark.django_db(transaction=True)
def test_the_same_tenant_gets_the_same_variant_in_another_process(score_card, two_tenants):
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict),
           "DJANGO_SETTINGS_MODULE": "backoffice.settings.test"}
    for tenant in two_tenants:
        for user in (None, "7"):
            extra = ["--user", user] if user else []
            printed = subprocess.run(
                [sys.executable, "manage.py", "config_experiment", "assign", score_card, "--tenant",
                 tenant.schema_name, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                check=True).stdout.strip()
            assert printed == config.variant(score_card, tenant=tenant, user=user)


def test_an_override_pins_a_tenant_and_the_kill_switch_sends_everyone_to_the_control(score_card, two_tenants):
    lakers, warriors = two_tenants
    services.entry_set(key="experiments.score_card.overrides", value={"lakers": "wide"})
    assert config.variant(score_card, tenant=lakers) == "wide"
    assert config.variant(score_card, tenant=lakers, user=123) == "wide"  # a tenant override covers its users
    natural = choose(score_card, SPEC, "warriors")[0]
    assert config.variant(score_card, tenant=warriors) == natural  # the other tenant keeps its own
    assert config.variant(score_card, tenant="public") == "classic"  # the operator's view: the control

    services.experiment_switch(name=score_card, enabled=False, changed_by="ops")
    assert {config.variant(score_card, tenant=t) for t in (lakers, warriors)} == {"classic"}
    assert config.source_of("experiments.score_card.enabled") == "database"
    services.experiment_switch(name=score_card, enabled=True)
    assert config.variant(score_card, tenant=lakers) == "wide"
    assert config.variant("no_such_experiment", tenant=lakers) is None


@pytest.mark.parametrize(("value", "rule"), [
    ({**SPEC, "control": "missing"}, "rule: control"),
    ({**SPEC, "overrides": {"lakers": "nope"}}, "rule: overrides"),
    ({**SPEC, "variants": {"classic": -1, "wide": 2}}, "rule: minimum"),
    ({**SPEC, "variants": {"classic": 1}}, "rule: minProperties"),
    ({"control": "classic"}, "rule: required"),
])
def test_an_invalid_experiment_is_refused_whole(db, value, rule):
    with pytest.raises(ValidationError) as refused:
        config.set("experiments.score_card", value)
    assert rule in " ".join(refused.value.messages)
    assert config.get("experiments.score_card") is None


def test_a_switch_needs_a_defined_experiment(db):
    with pytest.raises(ValidationError, match="No experiment"):
        services.experiment_switch(name="ghost", enabled=False)


@pytest.mark.django_db(transaction=True)  # committed writes: snapshots are cached as in production
def test_exposures_are_counted_in_memory_and_written_in_one_batch(score_card, two_tenants,
                                                                  django_assert_num_queries):
    lakers, warriors = two_tenants
    config.variant(score_card, tenant=lakers)  # builds the snapshots
    config.variant(score_card, tenant=warriors)
    config.variant(score_card, tenant="public")
    experiments.exposures.discard()
    with django_assert_num_queries(0):  # never a write (or a read) per evaluation
        for _ in range(500):
            config.variant(score_card, tenant=lakers)
        for _ in range(200):
            config.variant(score_card, tenant=warriors)
        for _ in range(50):
            config.variant(score_card, tenant="public")  # not counted
    assert ExperimentExposure.objects.count() == 0
    with CaptureQueriesContext(connection) as flushed:
        assert experiments.exposures.flush() == 2
    inserts = [q["sql"] for q in flushed.captured_queries if "INSERT" in q["sql"]]
    assert len(inserts) == 1 and "ON CONFLICT" in inserts[0]  # one batched upsert for all 700 evaluations
    rows = {(row.tenant.schema_name, row.variant): row.count for row in ExperimentExposure.objects.all()}
    assert rows == {("lakers", config.variant(score_card, tenant=lakers)): 500,
                    ("warriors", config.variant(score_card, tenant=warriors)): 200}
    experiments.exposures.discard()
    for _ in range(5):
        config.variant(score_card, tenant=lakers)
    experiments.exposures.flush()  # the day's row grows
    assert ExperimentExposure.objects.get(tenant=lakers).count == 505


def test_a_failed_flush_keeps_the_counts_for_the_next(score_card, tenant_lakers, monkeypatch):
    config.variant(score_card, tenant=tenant_lakers)
    before = experiments.exposures.pending()
    monkeypatch.setattr(ExperimentExposure._meta, "db_table", "no_such_table")
    with pytest.raises(Exception):  # noqa: B017 (the database's own error)
        experiments.exposures.flush()
    assert experiments.exposures.pending() == before


def _seed_counts(score_card, lakers, warriors):
    for tenant, times in ((lakers, 30), (warriors, 10)):
        for _ in range(times):
            config.variant(score_card, tenant=tenant)
    experiments.exposures.flush()


def test_the_admin_shows_the_split_as_a_table_and_a_chart_and_kills(operator_client, score_card, two_tenants):
    _seed_counts(score_card, *two_tenants)
    page = operator_client.get("/admin/configuration/experimentexposure/")
    html = page.content.decode()
    assert page.status_code == 200 and "score_card — running" in html
    for name in ("classic", "compact", "wide"):
        assert f'data-variant="{name}"' in html
    assert html.count('<rect class="bar"') == 3  # the chart: one bar per variant
    assert "40</td>" in html  # the total of exposures
    response = operator_client.post("/admin/configuration/experimentexposure/score_card/switch/",
                                    {"enabled": "false"})
    assert response.status_code == 302
    assert config.get("experiments.score_card.enabled") is False
    page = operator_client.get("/admin/configuration/experimentexposure/").content.decode()
    assert "off: everyone gets classic" in page


def test_the_operator_api_lists_the_split_and_switches(operator_client, score_card, two_tenants):
    _seed_counts(score_card, *two_tenants)
    listed = operator_client.get("/api/v1/config/experiments/").json()
    assert [e["name"] for e in listed] == ["score_card"]
    body = operator_client.get("/api/v1/config/experiments/score_card/").json()
    assert body["exposures"] == 40 and body["enabled"] is True
    assert [(v["name"], v["weight_share"]) for v in body["variants"]] == [
        ("classic", 50.0), ("compact", 30.0), ("wide", 20.0)]
    assert sum(v["exposures"] for v in body["variants"]) == 40
    assert operator_client.get("/api/v1/config/experiments/ghost/").status_code == 404
    bad = operator_client.post("/api/v1/config/experiments/score_card/switch/", {"enabled": "maybe"},
                               content_type="application/json")
    assert bad.status_code == 400 and bad.json()["error"]["code"]
    killed = operator_client.post("/api/v1/config/experiments/score_card/switch/", {"enabled": False},
                                  content_type="application/json")
    assert killed.status_code == 200 and killed.json()["enabled"] is False
    assert config.variant(score_card, tenant="lakers") == "classic"


def test_a_tenant_sees_its_own_variant_and_cannot_switch(score_card, lakers_client, warriors_client, two_tenants):
    services.entry_set(key="experiments.score_card.overrides", value={"lakers": "wide"})
    assert lakers_client.get("/api/v1/config/").json()["experiments"] == {"score_card": "wide"}
    warriors = warriors_client.get("/api/v1/config/").json()["experiments"]
    assert warriors == {"score_card": choose("score_card", SPEC, "warriors")[0]}  # not the Lakers' override
    refused = lakers_client.post("/api/v1/config/experiments/score_card/switch/", {"enabled": False},
                                 content_type="application/json")
    assert refused.status_code == 404
    assert lakers_client.post("/api/v1/config/overrides/", {"key": "experiments.score_card.enabled", "value": False},
                              content_type="application/json").status_code == 400
    assert config.get("experiments.score_card.enabled") is True


def test_the_command_lists_kills_and_resumes(score_card, two_tenants, capsys):
    _seed_counts(score_card, *two_tenants)
    call_command("config_experiment", "list")
    out = capsys.readouterr().out
    assert "score_card  running  (40 exposures)" in out and "classic (control)" in out
    call_command("config_experiment", "kill", "score_card")
    assert "every tenant gets classic" in capsys.readouterr().out
    assert config.variant(score_card, tenant="lakers") == "classic"
    call_command("config_experiment", "resume", "score_card")
    assert config.get("experiments.score_card.enabled") is True
    with pytest.raises(CommandError, match="No experiment"):
        call_command("config_experiment", "kill", "ghost")
    with pytest.raises(CommandError, match="--tenant"):
        call_command("config_experiment", "assign", "score_card", "--tenant", "nosuch")


def test_an_experiment_is_defined_and_pinned_through_the_entries_api_and_config_import(
        operator_client, two_tenants, tmp_path, capsys):
    """What configuration/README.md says: an experiment is defined like any key, from the API or a file."""
    created = operator_client.post("/api/v1/config/entries/", {"key": "experiments.score_card", "value": SPEC},
                                   content_type="application/json")
    assert created.status_code == 201, created.content
    pinned = operator_client.post("/api/v1/config/entries/",
                                  {"key": "experiments.score_card.overrides", "value": {"lakers": "wide"}},
                                  content_type="application/json")
    assert pinned.status_code == 201, pinned.content
    assert config.variant("score_card", tenant="lakers") == "wide"
    assert operator_client.get("/api/v1/config/experiments/score_card/").json()["enabled"] is True
    refused = operator_client.post("/api/v1/config/entries/",
                                   {"key": "experiments.score_card.overrides", "value": {"lakers": "nosuch"}},
                                   content_type="application/json")
    assert refused.status_code == 400  # an override must be one of the variants
    spec_file = tmp_path / "experiments.yaml"
    spec_file.write_text("experiments:\n  banner:\n    enabled: true\n    control: plain\n"
                         "    variants: {plain: 1, bold: 1}\n    overrides: {warriors: bold}\n")
    call_command("config_import", str(spec_file))
    capsys.readouterr()
    assert config.variant("banner", tenant="warriors") == "bold"
    call_command("config_experiment", "show", "banner")
    assert "override: warriors -> bold" in capsys.readouterr().out
