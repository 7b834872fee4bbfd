"""Discovery: tag filtering, weights, and a round-robin that stays fair across processes."""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from core.errors import DomainError
from registry import balancing, events, registration, selectors
from registry.models import ServiceInstance
from tests.conftest import database_url
from tests.registry.conftest import register

ROOT = Path(__file__).resolve().parents[2]


def passing(service_id: str, **kwargs):
    return register(service_id, checks=[], **kwargs)  # no checks: passing at once


def test_discover_filters_on_every_tag(db):
    passing("a", tags=["api", "production"], metadata={"version": "1.4", "zone": {"az": 2}})
    passing("b", tags=["api", "staging"])
    passing("c", tags=["api", "production", "eu"])
    passing("other", name="billing", tags=["api", "production"])

    assert [e.service_id for e in selectors.discover("stats-api", tags=["api", "production"])] == ["a", "c"]
    assert [e.service_id for e in selectors.discover("stats-api", tags=["eu"])] == ["c"]
    assert [e.service_id for e in selectors.discover("stats-api")] == ["a", "b", "c"]
    assert selectors.discover("nobody") == [] == balancing.discover("nobody")
    first = selectors.discover("stats-api")[0]
    assert (first.metadata, first.address, first.status) == ({"version": "1.4", "zone": {"az": 2}}, "10.0.0.1:8080",
                                                              "passing")
    assert [e.service_id for e in selectors.discover("stats-api", status=["critical", "warning"])] == []


def test_weights_are_honoured_and_interleaved(db):
    passing("heavy", weight=3)
    passing("light", weight=1)
    passing("middle", weight=2)

    picks = [balancing.next_instance("stats-api").service_id for _ in range(60)]

    assert Counter(picks) == {"heavy": 30, "middle": 20, "light": 10}
    assert picks[:6] == ["heavy", "light", "middle", "heavy", "middle", "heavy"]


def test_round_robin_respects_tags(db):
    passing("a", tags=["api"])
    passing("b", tags=["api"])
    passing("c", tags=["batch"])

    picks = Counter(balancing.next_instance("stats-api", tags=["api"]).service_id for _ in range(10))

    assert picks == {"a": 5, "b": 5}


ROUND_ROBIN_SCRIPT = """
import json, os, sys
import django
django.setup()
from registry import balancing, events, registration
print(json.dumps([balancing.next_instance("stats-api").service_id for _ in range(int(sys.argv[1]))]))
"""


@pytest.mark.django_db(transaction=True)
def test_round_robin_from_two_processes_is_fair_and_skips_a_critical_instance(public_tenant):
    for service_id in ("a", "b", "c"):
        passing(service_id)
    register("down")  # a TTL check that never got a heartbeat: critical
    assert ServiceInstance.objects.get(service_id="down").status == "critical"

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "backoffice.settings.test", "DATABASE_URL": database_url()}
    workers = [subprocess.Popen([sys.executable, "-c", ROUND_ROBIN_SCRIPT, "150"], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [worker.communicate(timeout=120) for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], [err[-2000:] for _, err in outputs]
    picks = Counter(pick for out, _ in outputs for pick in json.loads(out.strip().splitlines()[-1]))
    assert sum(picks.values()) == 300
    assert set(picks) == {"a", "b", "c"}
    assert all(99 <= count <= 101 for count in picks.values()), picks


@pytest.mark.django_db(transaction=True)
def test_heartbeats_and_round_robin_steps_outside_a_transaction_commit_and_leave_the_connection_clean(
        public_tenant):
    register("a")
    assert registration.service_heartbeat(service_id="a") == "passing"  # slow path: damping, then passing
    first = ServiceInstance.objects.get().last_heartbeat
    assert registration.service_heartbeat(service_id="a") == "passing"  # the one-message fast path
    assert ServiceInstance.objects.get().last_heartbeat > first
    assert [balancing.next_instance("stats-api").service_id for _ in range(3)] == ["a", "a", "a"]
    assert events.counter_next("rr:stats-api|") == 4

    with pytest.raises(DomainError):
        registration.service_heartbeat(service_id="ghost")
    with pytest.raises(Exception):  # noqa: B017 - a failing statement (NULL key) inside the one-message write
        events.counter_next(None)
    assert not connection.in_atomic_block
    with connection.cursor() as cursor:  # no transaction was left open or aborted on the connection
        cursor.execute("SELECT 1")
        assert connection.connection.info.transaction_status == 0  # IDLE
