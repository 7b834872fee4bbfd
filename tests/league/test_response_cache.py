"""The tenant API's response cache: per tenant, per query and page, for cache.ttl_seconds, dropped on any write.

Writes are seen at once whatever path made them (ORM bulk updates, the admin,
the API, commands): every write to a league table moves the schema's data
generation in PostgreSQL, and the generation is part of every cache key.
"""

from __future__ import annotations

import time

from django.core.management import call_command
from django_tenants.utils import schema_context

from configuration import config
from league.models import Team
from tests.foundation import factories


def _names(response) -> list[str]:
    return [team["full_name"] for team in response.json()["results"]]


def test_a_repeated_read_is_a_hit_and_any_write_is_seen_on_the_next_read(lakers_client):
    with schema_context("lakers"):
        lal = factories.team("LAL", full_name="Los Angeles Lakers")
        factories.team("BOS", full_name="Boston Celtics")

    first = lakers_client.get("/api/v1/teams/")
    second = lakers_client.get("/api/v1/teams/")
    assert (first.status_code, first["X-Cache"], second["X-Cache"]) == (200, "MISS", "HIT")
    assert second.json() == first.json()

    with schema_context("lakers"):
        Team.objects.filter(pk=lal.pk).update(full_name="Showtime")  # a bulk UPDATE: no model signal fires
    third = lakers_client.get("/api/v1/teams/")
    assert third["X-Cache"] == "MISS" and "Showtime" in _names(third)


def test_keys_carry_the_query_and_the_page(lakers_client):
    with schema_context("lakers"):
        for abbreviation in ("AAA", "BBB", "CCC"):
            factories.team(abbreviation)
    config.set("api.page_size", 2)

    page_one, page_two = lakers_client.get("/api/v1/teams/"), lakers_client.get("/api/v1/teams/?page=2")
    smaller = lakers_client.get("/api/v1/teams/?page_size=1")

    assert [page_one["X-Cache"], page_two["X-Cache"], smaller["X-Cache"]] == ["MISS", "MISS", "MISS"]
    assert len(page_one.json()["results"]) == 2 and len(page_two.json()["results"]) == 1
    assert len(smaller.json()["results"]) == 1
    assert lakers_client.get("/api/v1/teams/?page=2")["X-Cache"] == "HIT"


def test_one_tenants_cached_response_is_never_served_to_another_and_its_writes_leave_the_other_cached(
    lakers_client, warriors_client
):
    with schema_context("lakers"):
        lal = factories.team("LAL", full_name="Los Angeles Lakers")
    with schema_context("warriors"):
        factories.team("GSW", full_name="Golden State Warriors")

    assert _names(lakers_client.get("/api/v1/teams/")) == ["Los Angeles Lakers"]
    warriors_first = warriors_client.get("/api/v1/teams/")
    assert (warriors_first["X-Cache"], _names(warriors_first)) == ("MISS", ["Golden State Warriors"])
    assert warriors_client.get("/api/v1/teams/")["X-Cache"] == "HIT"

    with schema_context("lakers"):
        Team.objects.filter(pk=lal.pk).update(full_name="Showtime")
    assert _names(lakers_client.get("/api/v1/teams/")) == ["Showtime"]
    warriors_after = warriors_client.get("/api/v1/teams/")
    assert (warriors_after["X-Cache"], _names(warriors_after)) == ("HIT", ["Golden State Warriors"])


def test_writes_through_the_admin_the_api_and_a_command_invalidate(lakers_client):
    with schema_context("lakers"):
        lal = factories.team("LAL", full_name="Los Angeles Lakers")
        bos = factories.team("BOS", full_name="Boston Celtics")
        for index in range(6):
            factories.player(f"Player {index}", lal if index % 2 else bos)

    # The tenant admin.
    assert lakers_client.get("/api/v1/teams/")["X-Cache"] == "MISS"
    assert lakers_client.get("/api/v1/teams/")["X-Cache"] == "HIT"
    changed = lakers_client.post(f"/admin/league/team/{lal.pk}/change/", {
        "nba_id": lal.nba_id, "abbreviation": "LAL", "full_name": "Lake Show", "nickname": "Lakers",
        "city": "Los Angeles", "state": "CA", "year_founded": 1947,
    })
    assert changed.status_code == 302
    assert "Lake Show" in _names(lakers_client.get("/api/v1/teams/"))

    # The API.
    assert lakers_client.get("/api/v1/models/").json()["results"] == []
    assert lakers_client.get("/api/v1/models/")["X-Cache"] == "HIT"
    created = lakers_client.post("/api/v1/models/", {"name": "pts"}, content_type="application/json")
    assert created.status_code == 201
    assert [m["name"] for m in lakers_client.get("/api/v1/models/").json()["results"]] == ["pts"]

    # A command (the demo season needs eight teams).
    with schema_context("lakers"):
        for abbreviation in ("CCC", "DDD", "EEE", "FFF", "GGG", "HHH"):
            team = factories.team(abbreviation)
            factories.player(f"Player {abbreviation}", team)
    assert lakers_client.get("/api/v1/games/").json()["count"] == 0
    assert lakers_client.get("/api/v1/games/")["X-Cache"] == "HIT"
    with schema_context("lakers"):
        call_command("generate_season", games=3, seed=1, verbosity=0)
    games = lakers_client.get("/api/v1/games/")
    assert (games["X-Cache"], games.json()["count"]) == ("MISS", 3)


def test_entries_live_for_cache_ttl_seconds(lakers_client):
    with schema_context("lakers"):
        factories.team("LAL")
    assert lakers_client.get("/api/v1/teams/")["X-Cache"] == "MISS"
    time.sleep(1.2)
    assert lakers_client.get("/api/v1/teams/")["X-Cache"] == "HIT"  # the default 300 s

    config.set("cache.ttl_seconds", 1)
    assert lakers_client.get("/api/v1/teams/?page=1")["X-Cache"] == "MISS"
    assert lakers_client.get("/api/v1/teams/?page=1")["X-Cache"] == "HIT"
    time.sleep(1.2)
    assert lakers_client.get("/api/v1/teams/?page=1")["X-Cache"] == "MISS"


def test_only_successful_reads_are_cached(lakers_client):
    for _ in range(2):
        refused = lakers_client.get("/api/v1/players/?team=not-a-number")
        assert refused.status_code == 400 and refused.get("X-Cache") != "HIT"
    assert lakers_client.get("/api/v1/teams/999999/").status_code == 404
    assert lakers_client.get("/api/v1/teams/999999/").get("X-Cache") != "HIT"


def test_rows_of_gone_backends_are_folded_into_a_new_generation(lakers_client):
    from django.db import connection

    from league import selectors

    with schema_context("lakers"):
        team = factories.team("LAL")
        with connection.cursor() as cursor:  # a backend that wrote once and is long gone
            cursor.execute("INSERT INTO league_datageneration VALUES (2147483647, 1, 1)")
        seen = set()
        for index in range(2000):  # about 1 write in 100 folds; (0.99 ** 2000) is nil
            Team.objects.filter(pk=team.pk).update(year_founded=1900 + index % 100)
            seen.add(selectors.data_generation())
            with connection.cursor() as cursor:
                cursor.execute("SELECT backend FROM league_datageneration ORDER BY backend")
                backends = [row[0] for row in cursor.fetchall()]
            if 2147483647 not in backends:
                break
        assert backends == [0, connection.connection.info.backend_pid]
        assert len(seen) == index + 1  # every write, the fold included, gave a generation never seen before
