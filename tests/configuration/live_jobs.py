"""Plain django-q2 task functions the live key tests run on a real cluster (tests/configuration/test_keys_live.py).

`observe` runs in a worker, in the tenant's schema, and probes a behaviour
through the product's own code (the readers of configuration/keys.py, the
league selectors, metering) until it matches what the test expects, then
writes when it saw it (wall clock, comparable across processes).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from django.db import connection
from django_tenants.utils import schema_context


def _probe(name: str, arguments: dict):
    from configuration import keys
    from core.errors import DomainError
    from league import selectors
    from tenants import metering
    from tenants.models import Tenant

    if name == "reader":
        return getattr(keys, arguments["reader"])()
    if name == "variant":
        return keys.experiment_variant(arguments["name"])
    if name == "averages":
        scoring = selectors.scoring_current()
        rows = list(selectors.player_season_averages(player_id=arguments["player"], season=None, scoring=scoring))
        return {"model": scoring.model, "score": round(rows[-1]["score"], 6)}
    if name == "admit":
        try:
            admission = metering.request_admit(tenant=Tenant.objects.get(schema_name=connection.schema_name))
        except DomainError as refused:
            return refused.code
        metering.request_release(token=admission.token)
        return "admitted"
    if name == "admit_anonymous":
        try:
            metering.anonymous_admit(tenant=Tenant.objects.get(schema_name=connection.schema_name),
                                     address="192.0.2.10")
        except DomainError as refused:
            return refused.code
        return "admitted"
    raise ValueError(f"unknown probe {name}")


def observe(schema_name: str, probe: str, arguments: dict, expected, marker: str, seconds: float = 10.0) -> None:
    from configuration import config

    with schema_context(schema_name):
        config.listener_ready(timeout=10)
        value = _probe(probe, arguments)
        Path(marker + ".ready").write_text(json.dumps({"value": value}, default=str))
        deadline = time.monotonic() + seconds
        while value != expected and time.monotonic() < deadline:
            time.sleep(0.01)
            value = _probe(probe, arguments)
        Path(marker).write_text(json.dumps({"value": value, "seen_at": time.time(), "matched": value == expected},
                                           default=str))
