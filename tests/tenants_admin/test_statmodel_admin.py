"""Saved models in the tenant admin, within the plan's quota: a clear form error, nothing written."""

from __future__ import annotations

import threading

import psycopg
from django.db import connection
from django_tenants.utils import schema_context

from league.models import StatModel

from .conftest import put_on_plan

ADD = "/admin/league/statmodel/add/"


def html(response) -> str:
    return response.content.decode()


def models_in(schema: str) -> list[str]:
    with schema_context(schema):
        return list(StatModel.objects.values_list("name", flat=True))


def test_a_model_within_the_quota_is_saved(lakers_client, tenant_lakers):
    put_on_plan(tenant_lakers, "FREE")  # one saved model

    response = lakers_client.post(ADD, {"name": "Points next game", "target": "points", "window_games": "10"},
                                  follow=True)

    assert response.status_code == 200
    assert models_in("lakers") == ["Points next game"]
    assert any("Added the stat model “Points next game”." in str(m) for m in response.context["messages"])


def test_one_model_over_the_quota_is_a_form_error_before_any_write(lakers_client, warriors_client, tenant_lakers,
                                                                   tenant_warriors):
    put_on_plan(tenant_lakers, "FREE")
    put_on_plan(tenant_warriors, "FREE")
    with schema_context("lakers"):
        StatModel.objects.create(name="Points next game")

    refused = lakers_client.post(ADD, {"name": "Assists", "target": "assists", "window_games": "5"})
    # The other tenant's quota is its own: the Lakers' model does not count against the Warriors.
    accepted = warriors_client.post(ADD, {"name": "Assists", "target": "assists", "window_games": "5"})

    assert refused.status_code == 200
    assert "The Free plan allows 1 saved models; this tenant has 1." in html(refused)
    assert models_in("lakers") == ["Points next game"]
    assert accepted.status_code == 302
    assert models_in("warriors") == ["Assists"]


def test_the_database_trigger_refusal_is_a_form_error_when_a_concurrent_save_wins_the_last_slot(
    lakers_client, tenant_lakers
):
    """Two admins save the last model at once: both pass the pre-check, the trigger refuses the second.

    A second, real PostgreSQL session plays the first admin: it inserts a model and holds the
    trigger's per-table lock until this request's insert is seen waiting on that lock, then commits.
    """
    put_on_plan(tenant_lakers, "FREE")
    # Same server and database as Django's connection, also when it is the embedded one on a socket.
    other = psycopg.connect(**connection.get_connection_params())
    committed = threading.Event()
    problems = []

    def first_admin():
        try:
            with other.cursor() as cursor:
                # This session's own trigger cannot see the test's uncommitted FREE plan, so it takes
                # the lock the trigger would have taken itself.
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext('lakers.league_statmodel'))")
                cursor.execute(
                    "INSERT INTO lakers.league_statmodel (name, target, window_games, status, metrics, created_at)"
                    " VALUES ('Rebounds', 'defensive_rebounds', 10, 'draft', '{}', now())"
                )
                for _ in range(600):  # until the admin's insert waits on the lock (at most ~60 s)
                    cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                    if cursor.fetchone()[0]:
                        break
                    threading.Event().wait(0.1)
                else:
                    problems.append("the admin's insert never waited on the quota lock")
            other.commit()
        except Exception as error:  # reported by the main thread
            problems.append(repr(error))
        finally:
            committed.set()

    thread = threading.Thread(target=first_admin)
    try:
        with other.cursor() as cursor:
            cursor.execute("SET lock_timeout = '60s'")
        thread.start()
        response = lakers_client.post(ADD, {"name": "Points", "target": "points", "window_games": "10"})
        thread.join(timeout=90)
        assert not problems, problems
        assert response.status_code == 200
        page = html(response)
        assert "The Free plan allows 1 saved models; this tenant has 1." in page
        assert "move to a larger plan" not in page  # the trigger's words, not the pre-check's
        assert models_in("lakers") == ["Rebounds"]  # the winner's model only; the refused insert left nothing
    finally:
        thread.join(timeout=5)
        with other.cursor() as cursor:
            cursor.execute("DELETE FROM lakers.league_statmodel WHERE name = 'Rebounds'")
        other.commit()
        other.close()
