"""A process that registers itself is passing from the moment anyone can see it (found by the operator's-day test).

New checks start critical, as in Consul; a process registering itself is alive by definition, so its registration
and its first heartbeat commit together. Before, the registration committed first: a health sweep or an operator
reading the registry in between saw a live web worker critical (tests/operator_day caught one such sample).
Here the first heartbeat's check result is held back by a table lock from another connection, so the moment
between the two is as long as the test wants, and a third connection looks at the registry meanwhile.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
from django.db import connection

from registry import selfreg
from tests.conftest import connection_params

SERVICE_ID = "web-atomic-test-1"


def _status(reader) -> str | None:
    row = reader.execute("SELECT status FROM services_serviceinstance WHERE service_id = %s", [SERVICE_ID]).fetchone()
    return row[0] if row else None


@pytest.mark.django_db(transaction=True)
def test_a_process_registering_itself_is_never_seen_critical(public_tenant, settings):
    settings.SERVICES = {"SELF_REGISTER": True, "AUTO_SCHEDULE": False}
    heartbeat = selfreg.ProcessHeartbeat(register_kwargs={
        "service_id": SERVICE_ID, "name": selfreg.WEB_SERVICE, "host": "127.0.0.1", "port": 8000,
        "tags": ["courtside", "web"], "metadata": {"pid": 1}})
    params = connection_params()
    failures: list[str] = []

    def beat():
        try:
            heartbeat.beat_once()
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(repr(error))
        finally:
            connection.close()

    with psycopg.connect(**params) as locker, psycopg.connect(**params, autocommit=True) as reader:
        locker.execute("LOCK TABLE services_checkresult IN EXCLUSIVE MODE")  # the first heartbeat's result waits
        thread = threading.Thread(target=beat)
        thread.start()
        deadline = time.monotonic() + 30
        while not reader.execute("SELECT count(*) FROM pg_locks WHERE relation = 'services_checkresult'::regclass "
                                 "AND NOT granted").fetchone()[0]:
            assert time.monotonic() < deadline and thread.is_alive(), failures or "the heartbeat never waited"
            time.sleep(0.05)
        seen_meanwhile = _status(reader)
        locker.rollback()
        thread.join(timeout=30)
        assert failures == []
        assert seen_meanwhile is None  # not there yet, rather than there and critical
        assert _status(reader) == "passing"
