#!/usr/bin/env python
"""Which production server: tenant API requests per second through gunicorn, granian and runserver, same run.

    .venv/bin/python bench/server.py        (DATABASE_URL, or the embedded PostgreSQL)

In a database of its own (courtside_bench_server): one tenant with the real
teams, an API key, metering on (the burst limit far above the rate). Each
server runs the project's WSGI application (backoffice.wsgi: the heartbeat fast
path, then Django) with 2 processes x 4 threads on this 2-core machine:
gunicorn as deploy/gunicorn.conf.py runs it (gthread), granian (WSGI, when
installed: `pip install granian`), and Django's runserver (one process,
threaded) as the baseline. 8 keep-alive clients GET /api/v1/teams/ (the
response cache answers) and /api/v1/players/?search=<n> (computed each time),
in alternating rounds so drift hits every server. Prints req/s and the ratio
to runserver.
"""

from __future__ import annotations

import itertools
import os

import serving
from common import setup_django

SECONDS = float(os.environ.get("BENCH_SERVER_SECONDS", "4"))
ROUNDS = int(os.environ.get("BENCH_SERVER_ROUNDS", "2"))


def main() -> None:
    setup_django("courtside_bench_server")
    from django.core.management import call_command
    from django.db import connection
    from django_tenants.utils import schema_context

    from configuration import config
    from core.embedded_db import url_from_settings
    from league import services as league_services
    from tenants import services
    from tenants.models import Tenant

    services.public_tenant_ensure()
    tenant = Tenant.objects.filter(schema_name="benchserver").first() or services.tenant_create(
        name="Bench server", schema_name="benchserver", plan="ENTERPRISE")
    call_command("migrate_schemas", schema_name="benchserver", interactive=False, verbosity=0)
    with schema_context("benchserver"):
        league_services.reference_load(active_only=True)
    config.set("api.rate_limit_per_minute", 1_000_000, changed_by="bench/server.py")  # counted, never reached
    _, key = services.api_key_create(tenant=tenant, name="bench")
    connection.close()
    env = {**os.environ, "DATABASE_URL": url_from_settings(connection.settings_dict), "LOG_LEVEL": "WARNING",
           "DEBUG": "0", "DJANGO_SETTINGS_MODULE": "backoffice.settings.local"}
    headers = {"Authorization": f"Api-Key {key}"}
    counter = itertools.count()
    workloads = {
        "cached": lambda: [serving.get("/api/v1/teams/", "benchserver.localhost", headers)] * 8,
        "computed": lambda: [serving.get(f"/api/v1/players/?search=a&n={next(counter)}", "benchserver.localhost",
                                         headers) for _ in range(8)],
    }
    kinds = [kind for kind in ("gunicorn", "granian", "runserver") if serving.available(kind)]
    print(f"tenant API through each server, 8 keep-alive clients, {ROUNDS} x {SECONDS:g} s per server and workload")
    for name, requests in workloads.items():
        rates = {kind: [] for kind in kinds}
        for _ in range(ROUNDS):
            for kind in kinds:
                process, port = serving.start(kind, env)
                try:
                    rate, statuses = serving.load(port, requests(), SECONDS)
                finally:
                    serving.stop(process)
                if set(statuses) != {200}:
                    raise SystemExit(f"{kind} answered {statuses}")
                rates[kind].append(rate)
        means = {kind: sum(values) / len(values) for kind, values in rates.items()}
        base = means["runserver"]
        print(f"  {name:8}: " + ", ".join(f"{kind} {means[kind]:,.0f} req/s ({means[kind] / base:.2f}x)"
                                          for kind in kinds) + "   (ratio to runserver)")


if __name__ == "__main__":
    main()
