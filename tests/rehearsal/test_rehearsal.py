"""Many processes, one system (issue 19.3), bounded for CI: two web servers, two clusters, PgBouncer, Redis.

A shorter run of bench/rehearsal.py's rehearsal (tests/rehearsal/fleet.py):
two SIGKILLs of a web server and two of a cluster during about 35 s of mixed
load, then every promise checked. Needs Redis (REDIS_URL, else
redis://127.0.0.1:6379/15) and PgBouncer (`make pgbouncer`); marked
`rehearsal` and `cluster`; run alone: `REHEARSAL=1 pytest -m rehearsal -s`. Skipped without REHEARSAL=1 (it
takes the whole machine for about two minutes: .ci/run sets it in a block of its own), and skipped, saying
which, when PgBouncer or Redis is missing.
"""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlsplit

import pytest

from tests.conftest import database_url
from tests.pgbouncer import BINARY
from tests.rehearsal.fleet import Knobs, rehearse

pytestmark = [pytest.mark.rehearsal, pytest.mark.cluster, pytest.mark.django_db(transaction=True)]


def _knobs() -> Knobs:
    knobs = Knobs()
    for name in ("seconds", "web_kills", "cluster_kills", "quota", "config_every"):
        if value := os.environ.get(f"REHEARSAL_{name.upper()}"):
            setattr(knobs, name, type(getattr(knobs, name))(value))
    if seed := os.environ.get("REHEARSAL_SEED"):
        knobs.seed = int(seed)
    return knobs


def _redis_url() -> str:
    return os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


def _redis_missing() -> str:
    import socket

    parts = urlsplit(_redis_url())
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2).close()
    except OSError as error:
        return f"Redis is not reachable at {_redis_url()} ({error})"
    return ""


@pytest.mark.skipif(not os.environ.get("REHEARSAL"), reason="takes the machine for ~2 minutes: run alone with "
                    "REHEARSAL=1 (.ci/run does)")
@pytest.mark.skipif(not shutil.which(BINARY) and not os.path.exists(BINARY), reason="PgBouncer is not installed "
                    "(make pgbouncer)")
def test_kills_lose_nothing_and_quotas_stay_exact(public_tenant, tenant_lakers, tenant_warriors, tmp_path, settings):
    url = database_url()
    if "?" in url:  # the embedded server listens on a socket only; PgBouncer reaches PostgreSQL over TCP
        pytest.skip("the rehearsal needs PostgreSQL on TCP (DATABASE_URL)")
    if missing := _redis_missing():
        pytest.skip(missing)
    knobs = _knobs()
    # The operator's sweep (this process) with the window scaled to the processes' TTL, as in production (a 60 s
    # window for the 60 s SELF_TTL): lapses within one TTL of each other are "at once".
    settings.SERVICES = {"SELF_PRESERVATION_WINDOW": knobs.ttl}
    figures, broken = rehearse(knobs=knobs, database_url=url, redis_url=_redis_url(), workdir=tmp_path)
    print("\nThe rehearsal:", "  ".join(f"{k}={v}" for k, v in figures.items()))
    assert broken == [], "\n".join(broken)
    assert figures["over_admissions"] == 0
    assert figures["web_kills"] >= 1 and figures["cluster_kills"] >= 1
    assert figures["tasks_accepted"] > 0 and figures["propagations_checked"] > 0
