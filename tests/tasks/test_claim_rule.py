"""The claim rule is written once (tasks.engine.claim) and the database's claim function is generated from it."""

from __future__ import annotations

import pytest
from django.db import connection

from tasks.engine import claim
from tasks.engine.claim import CLAIMABLE, claim_function_sql
from tasks.engine.sql import render
from tasks.models import Priority, parse_priority


@pytest.mark.django_db
def test_the_claim_function_in_the_database_is_the_one_the_rule_generates():
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'courtside_claim_run'")
        (stored,) = cursor.fetchone()
    generated = claim_function_sql("public").split("$$")[1]
    # Changed the rule without a migration? Add one like tasks 0008 (it imports the generated text).
    assert stored == generated
    rule = CLAIMABLE.split("{due_by}")[0]
    assert rule in stored and rule in render(claim._FAST_CLAIM)


@pytest.mark.parametrize(("given", "read"), [
    ("high", Priority.HIGH), (" CRITICAL ", Priority.CRITICAL), (0, Priority.LOW), ("1", Priority.NORMAL),
    (None, None),
])
def test_a_priority_is_read_in_one_place(given, read):
    assert parse_priority(given) == read


@pytest.mark.parametrize("given", ["URGENT", 7, True, "-1", 1.5, ""])
def test_anything_else_is_refused_naming_the_choices(given):
    with pytest.raises(ValueError, match="LOW, NORMAL, HIGH, CRITICAL"):
        parse_priority(given)
