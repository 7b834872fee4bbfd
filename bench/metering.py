#!/usr/bin/env python
"""Metering overhead: requests per second of one tenant API endpoint with metering on and off.

In a database of its own (courtside_bench_metering): one tenant on the
PROFESSIONAL plan (daily call quota and a concurrency limit, so both the
conditional upsert and the lease are exercised), authenticated with an API
key, GET /api/v1/teams/ (30 teams) through Django's test client in-process.
The burst limit is on too (api.rate_limit_per_minute set far above the
benchmark's rate), so the admission does all its work: concurrency lease,
daily count and minute count in one upsert. Rounds alternate on and off
(TENANT_METERING_ENABLED) so drift hits both. Two workloads: "cached" (the
same page again: the response cache answers, as clients see it) and
"computed" (a new query string each time: the page is computed, as before the
cache existed). Prints requests/s each way, the overhead in ms per request
and the ratio on/off (target >= 0.85). The cache makes the unmetered side
cheaper, so the cached ratio is lower for the same overhead: compare the
overhead, or the computed ratio, with runs before the cache.
"""

from __future__ import annotations

import itertools
import os
import time

from common import setup_django

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
PER_ROUND = int(os.environ.get("BENCH_REQUESTS", "300"))


def main() -> None:
    setup_django("courtside_bench_metering")
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django_tenants.utils import schema_context

    from configuration import config
    from league import services as league_services
    from tenants import services
    from tenants.models import Tenant, UsageDay

    services.public_tenant_ensure()
    tenant = Tenant.objects.filter(schema_name="benchmeter").first() or services.tenant_create(
        name="Bench metering", schema_name="benchmeter", plan="PROFESSIONAL"
    )
    # A schema left by an earlier run gets the tenant migrations added since.
    call_command("migrate_schemas", schema_name="benchmeter", interactive=False, verbosity=0)
    with schema_context("benchmeter"):
        league_services.reference_load(active_only=True)
    UsageDay.objects.filter(tenant=tenant).delete()
    config.set("api.rate_limit_per_minute", 1_000_000, changed_by="bench/metering.py")  # counted, never reached
    _, raw_key = services.api_key_create(tenant=tenant, name="bench", scope="read")
    client = Client(HTTP_HOST="benchmeter.localhost", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    misses = itertools.count()
    workloads = {
        # As clients see it: the league response cache answers (one generation lookup, no page query).
        "cached": lambda: "/api/v1/teams/",
        # As before the cache: a new query string each time, so the page is computed (and stored).
        "computed": lambda: f"/api/v1/teams/?n={next(misses)}",
    }

    def run(enabled: bool, path) -> float:
        settings.TENANT_METERING_ENABLED = enabled
        t0 = time.perf_counter()
        for _ in range(PER_ROUND):
            response = client.get(path())
            assert response.status_code == 200, response.content
        return time.perf_counter() - t0

    total = ROUNDS * PER_ROUND
    print(f"metering overhead, GET /api/v1/teams/, {total} requests each way and workload, same run")
    for name, path in workloads.items():
        for enabled in (True, False):  # warm-up
            run(enabled, path)
        on = off = 0.0
        for _ in range(ROUNDS):
            on += run(True, path)
            off += run(False, path)
        on_rps, off_rps = total / on, total / off
        print(f"  {name:8}: metering on {on_rps:6.0f} req/s ({on / total * 1000:.2f} ms), "
              f"off {off_rps:6.0f} req/s ({off / total * 1000:.2f} ms), "
              f"overhead {(on - off) / total * 1000:+.2f} ms/request, ratio on/off {on_rps / off_rps:.2f}")
    calls = UsageDay.objects.get(tenant=tenant).api_calls
    print(f"  (calls recorded in the ledger: {calls})")
    through_the_production_server(raw_key)


def through_the_production_server(raw_key: str) -> None:
    """The same comparison over real HTTP through gunicorn (deploy/gunicorn.conf.py): one server metered, one not,
    started side by side, loaded in alternating rounds by 8 keep-alive clients."""
    import serving
    from django.db import connection

    from core.embedded_db import url_from_settings

    connection.close()
    env = {**os.environ, "DATABASE_URL": url_from_settings(connection.settings_dict), "LOG_LEVEL": "WARNING",
           "DEBUG": "0"}
    seconds, rounds = float(os.environ.get("BENCH_SERVER_SECONDS", "4")), int(os.environ.get("BENCH_SERVER_ROUNDS",
                                                                                              "3"))
    servers = {enabled: serving.start("gunicorn", {**env, "TENANT_METERING_ENABLED": str(enabled)})
               for enabled in (True, False)}
    try:
        requests = [serving.get("/api/v1/teams/", "benchmeter.localhost", {"Authorization": f"Api-Key {raw_key}"})
                    for _ in range(8)]
        rates = {True: [], False: []}
        for _ in range(rounds):
            for enabled, (_, port) in servers.items():
                rate, statuses = serving.load(port, requests, seconds)
                if set(statuses) != {200}:
                    raise SystemExit(f"the server answered {statuses}")
                rates[enabled].append(rate)
    finally:
        for process, _ in servers.values():
            serving.stop(process)
    on, off = sum(rates[True]) / rounds, sum(rates[False]) / rounds
    print(f"through the production server (gunicorn, 2 workers x 4 threads, 8 keep-alive clients, {rounds} x "
          f"{seconds:g} s each way, same run): metering on {on:,.0f} req/s, off {off:,.0f} req/s, "
          f"ratio on/off {on / off:.2f} (target >= 0.85)")


if __name__ == "__main__":
    main()
