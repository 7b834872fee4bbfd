"""A new tenant starts with the NBA reference data (30 teams, the players list), from the pool or migrated in place.

The pooled schemas carry the data, so a sign-up stays a rename; a pooled schema
built from other reference data than the file on disk is stale like one built
from other migrations. The demo season keeps the team the reference data gives a
player and marks the teams it makes up.
"""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from league import services as league_services
from league.models import Player, Team
from tenants import provisioning, services
from tenants.models import PooledSchema

REFERENCE = league_services.reference_data()


def _counts(schema_name):
    with schema_context(schema_name):
        return Team.objects.count(), Player.objects.count()


def test_a_tenant_created_in_place_starts_with_the_nba_reference_data(public_tenant):
    assert not PooledSchema.objects.exists()

    services.tenant_create(name="Boston Celtics", schema_name="celtics")

    assert _counts("celtics") == (len(REFERENCE["teams"]), len(REFERENCE["players"])) == (30, 5198)
    with schema_context("celtics"):
        assert Player.objects.filter(full_name="LeBron James", is_active=True).exists()


def test_a_tenant_from_the_pool_has_it_without_loading_it_at_sign_up(public_tenant):
    pooled = provisioning.pool_add()
    assert _counts(pooled.schema_name) == (30, 5198)  # loaded when the pool was filled

    with CaptureQueriesContext(connection) as queries:
        services.tenant_create(name="Miami Heat", schema_name="heat")

    assert not PooledSchema.objects.exists()  # heat is the renamed pooled schema
    assert _counts("heat") == (30, 5198)
    assert not [q["sql"] for q in queries.captured_queries if "league_player" in q["sql"]]


def test_a_pooled_schema_built_from_other_reference_data_is_stale(public_tenant, tmp_path, monkeypatch):
    stale = provisioning.pool_add()
    changed = json.loads(json.dumps(REFERENCE))
    changed["teams"][0]["nickname"] = "Renamed"
    path = tmp_path / "nba_reference.json"
    path.write_text(json.dumps(changed))
    monkeypatch.setattr(league_services, "REFERENCE_FILE", path)

    assert provisioning.pool_fingerprint() != stale.fingerprint
    services.tenant_create(name="Utah Jazz", schema_name="jazz")

    assert PooledSchema.objects.filter(pk=stale.pk).exists()  # not handed out
    with schema_context("jazz"):
        assert Team.objects.get(nba_id=changed["teams"][0]["nba_id"]).nickname == "Renamed"
    assert provisioning.pool_refill(size=1) == {"dropped": 1, "added": 1, "size": 1}
    fresh = PooledSchema.objects.get()
    with schema_context(fresh.schema_name):
        assert Team.objects.filter(nickname="Renamed").count() == 1


def _reference_with_teams(tmp_path, monkeypatch, assignments: dict[str, str]) -> dict[str, int]:
    """The shipped reference data, with a team for some active players: {full name: team abbreviation}."""
    data = json.loads(json.dumps(REFERENCE))
    team_ids = {team["abbreviation"]: team["nba_id"] for team in data["teams"]}
    given = {}
    for player in data["players"]:
        if player["full_name"] in assignments and player["is_active"]:
            player["team_nba_id"] = team_ids[assignments[player["full_name"]]]
            given[player["full_name"]] = player["team_nba_id"]
    assert set(given) == set(assignments)
    path = tmp_path / "nba_reference.json"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(league_services, "REFERENCE_FILE", path)
    return given


def test_the_demo_season_keeps_the_reference_team_and_marks_the_teams_it_makes_up(tenant_lakers, tmp_path,
                                                                                  monkeypatch):
    given = _reference_with_teams(tmp_path, monkeypatch, {"LeBron James": "LAL", "Stephen Curry": "GSW"})

    with schema_context("lakers"):
        league_services.reference_load()
        out = StringIO()
        call_command("generate_season", games=20, seed=3, stdout=out, stderr=StringIO())

        for name, team_id in given.items():
            player = Player.objects.select_related("team").get(full_name=name)
            assert player.team.nba_id == team_id and player.team_generated is False
        on_rosters = Player.objects.filter(team__isnull=False)
        assert on_rosters.count() == 30 * 15
        assert on_rosters.filter(team_generated=False).count() == 2
        assert on_rosters.filter(team_generated=True).count() == 30 * 15 - 2
        assert not Player.objects.filter(team__isnull=True, team_generated=True).exists()
        text = out.getvalue()
        assert "2 players on the team the reference data gives them" in text
        assert "448 players on a generated team (the reference data gives them none)" in text

        # A second run re-draws the generated rosters only.
        call_command("generate_season", games=20, seed=4, stdout=StringIO(), stderr=StringIO())
        assert Player.objects.get(full_name="LeBron James").team.nba_id == given["LeBron James"]
        assert Player.objects.filter(team__isnull=False, team_generated=False).count() == 2


def test_the_players_api_says_whose_team_is_generated(lakers_client, tmp_path, monkeypatch):
    _reference_with_teams(tmp_path, monkeypatch, {"LeBron James": "LAL"})
    with schema_context("lakers"):
        league_services.reference_load()
        league_services.season_generate(games=2, seed=1)

    rows = lakers_client.get("/api/v1/players/", {"search": "LeBron James"}).json()["results"]
    assert [(r["full_name"], r["team_generated"]) for r in rows] == [("LeBron James", False)]
    with schema_context("lakers"):
        generated = Player.objects.filter(team_generated=True).first()
    rows = lakers_client.get("/api/v1/players/", {"search": generated.full_name}).json()["results"]
    assert {r["team_generated"] for r in rows if r["id"] == generated.pk} == {True}


def test_a_reference_team_that_does_not_exist_is_refused_by_name(tenant_lakers, tmp_path, monkeypatch):
    from django.core.exceptions import ValidationError

    data = json.loads(json.dumps(REFERENCE))
    data["players"][0]["team_nba_id"] = 42
    path = tmp_path / "nba_reference.json"
    path.write_text(json.dumps(data))
    monkeypatch.setattr(league_services, "REFERENCE_FILE", path)

    with schema_context("lakers"), pytest.raises(ValidationError, match=data["players"][0]["full_name"]):
        league_services.reference_load()
    with schema_context("lakers"):
        assert Team.objects.count() == 0  # nothing half loaded
