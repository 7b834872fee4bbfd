#!/usr/bin/env python
"""Metering overhead: requests per second of one tenant API endpoint with metering on and off.

In a database of its own (courtside_bench_metering): one tenant on the
PROFESSIONAL plan (daily call quota and a concurrency limit, so both the
conditional upsert and the lease are exercised), authenticated with an API
key, GET /api/v1/teams/ (30 teams) through Django's test client in-process.
Rounds alternate on and off (TENANT_METERING_ENABLED) so drift hits both.
Prints requests/s each way and the ratio on/off (target >= 0.85).
"""

from __future__ import annotations

import os
import time

from common import setup_django

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6"))
PER_ROUND = int(os.environ.get("BENCH_REQUESTS", "300"))


def main() -> None:
    setup_django("courtside_bench_metering")
    from django.conf import settings
    from django.test import Client
    from django_tenants.utils import schema_context

    from league import services as league_services
    from tenants import services
    from tenants.models import Tenant, UsageDay

    services.public_tenant_ensure()
    tenant = Tenant.objects.filter(schema_name="benchmeter").first() or services.tenant_create(
        name="Bench metering", schema_name="benchmeter", plan="PROFESSIONAL"
    )
    with schema_context("benchmeter"):
        league_services.reference_load(active_only=True)
    UsageDay.objects.filter(tenant=tenant).delete()
    _, raw_key = services.api_key_create(tenant=tenant, name="bench", scope="read")
    client = Client(HTTP_HOST="benchmeter.localhost", HTTP_AUTHORIZATION=f"Api-Key {raw_key}")

    def run(enabled: bool) -> float:
        settings.TENANT_METERING_ENABLED = enabled
        t0 = time.perf_counter()
        for _ in range(PER_ROUND):
            response = client.get("/api/v1/teams/")
            assert response.status_code == 200, response.content
        return time.perf_counter() - t0

    for enabled in (True, False):  # warm-up
        run(enabled)
    on = off = 0.0
    for _ in range(ROUNDS):
        on += run(True)
        off += run(False)
    total = ROUNDS * PER_ROUND
    on_rps, off_rps = total / on, total / off
    calls = UsageDay.objects.get(tenant=tenant).api_calls
    print(f"metering overhead, GET /api/v1/teams/, {total} requests each way, same run")
    print(f"  metering on : {on_rps:8.0f} req/s  ({on / total * 1000:.2f} ms/request)")
    print(f"  metering off: {off_rps:8.0f} req/s  ({off / total * 1000:.2f} ms/request)")
    print(f"  ratio on/off: {on_rps / off_rps:.2f}   (calls recorded in the ledger: {calls})")


if __name__ == "__main__":
    main()
