"""core.db.soft_write: one round trip, relaxed commit, and its prepared form for the hottest statements."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from core.db import soft_write

pytestmark = pytest.mark.django_db(transaction=True)

STATEMENT = "SELECT %(label)s::text || '-' || (%(number)s + 1)::text, current_setting('synchronous_commit')"
TYPES = {"label": "text", "number": "integer"}


def prepared_here() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE name LIKE 'courtside_%%'")
        return [row[0] for row in cursor.fetchall()]


def test_a_prepared_statement_is_prepared_once_per_connection_and_commits_relaxed():
    assert soft_write(STATEMENT, {"label": "a", "number": 1}, prepared=TYPES) == ("a-2", "off")
    assert soft_write(STATEMENT, {"label": "b", "number": 41}, prepared=TYPES) == ("b-42", "off")
    statements = prepared_here()
    assert len(statements) == 1 and "$1::text || '-' || ($2 + 1)" in statements[0]
    # The relaxed setting was local to its transaction: the session commits synchronously again.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"

    connection.close()  # a new connection has no prepared statements: prepared again there
    assert soft_write(STATEMENT, {"label": "c", "number": 0}, prepared=TYPES) == ("c-1", "off")
    assert len(prepared_here()) == 1


def test_a_statement_deallocated_behind_its_back_is_prepared_again():
    soft_write(STATEMENT, {"label": "a", "number": 1}, prepared=TYPES)
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does
    assert soft_write(STATEMENT, {"label": "z", "number": 9}, prepared=TYPES) == ("z-10", "off")


def test_a_failing_statement_leaves_no_transaction_open_and_inside_one_it_is_a_plain_statement():
    with pytest.raises(Exception, match="division by zero"):
        soft_write("SELECT 1 / %(zero)s", {"zero": 0}, prepared={"zero": "integer"})
    assert soft_write(STATEMENT, {"label": "ok", "number": 0}, prepared=TYPES) == ("ok-1", "off")
    with transaction.atomic():
        # Never weakens the caller's commit: no SET LOCAL inside the caller's transaction.
        assert soft_write(STATEMENT, {"label": "in", "number": 0}, prepared=TYPES) == ("in-1", "on")


def test_a_prepared_statement_keeps_an_index_plan_made_while_its_table_was_empty():
    # The task success statement is prepared while the queue may be empty; its DELETE by id must still use
    # the primary key when the queue holds thousands of packages.
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE parcels (id bigint PRIMARY KEY, body text)")
        cursor.execute("ANALYZE parcels")  # known empty, as a drained queue after autovacuum
    statement = "DELETE FROM parcels WHERE id = %(id)s RETURNING id"
    for _ in range(7):  # past the 5 custom plans: the generic plan is made and kept now
        assert soft_write(statement, {"id": 1}, prepared={"id": "bigint"}) is None
    with connection.cursor() as cursor:
        # No ANALYZE now (autovacuum never sees a temporary table): nothing invalidates the plan kept while empty.
        cursor.execute("INSERT INTO parcels SELECT n, repeat('x', 100) FROM generate_series(1, 20000) AS n")
        (name,) = [row[0] for row in cursor.execute(
            "SELECT name FROM pg_prepared_statements WHERE statement LIKE '%%parcels%%'").fetchall()]
        cursor.execute("SET plan_cache_mode = force_generic_plan")
        plan = "\n".join(row[0] for row in cursor.execute(f"EXPLAIN EXECUTE {name} (5)").fetchall())
        cursor.execute("RESET plan_cache_mode")
    assert "Index" in plan and "Seq Scan" not in plan
    assert soft_write(statement, {"id": 5}, prepared={"id": "bigint"}) == (5,)


def test_behind_a_transaction_pooler_a_prepared_statement_goes_out_plain(settings):
    # Found by the rehearsal (issue 19.3): behind PgBouncer every fast claim of a task run raised
    # UnboundLocalError, so no task ran. No PREPARE there (session state), the statement itself instead.
    settings.DATABASE_POOL_MODE = "transaction"
    connection.close()
    assert soft_write(STATEMENT, {"label": "pooled", "number": 1}, prepared=TYPES) == ("pooled-2", "off")
    assert prepared_here() == []
