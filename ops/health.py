"""/healthz and /readyz, on every host, answered before the tenant lookup and any other middleware.

    /healthz   the process answers: 200 {"status": "ok"}, no dependency touched
    /readyz    200 when every dependency is ready, else 503, with one word per check:
               {"status": "ok"|"unavailable", "checks": {"database": "ok", "migrations": "ok", ...}}

The checks are django-health-check's (Database, Redis) and three of ours in
its interface (HealthCheck subclasses): the public schema has no unapplied
migration, the task cluster heartbeated within HEALTH_CLUSTER_MAX_AGE (its
self-registration in the registry), the embedded PostgreSQL runs (only when
it is the database). No per-tenant work, and the answer names no version,
host, error text or secret: failures are logged (masked) for the operator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
import logging
import threading
import time

from django.apps import apps
from django.conf import settings
from django.db import connection, router
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone
from health_check.base import HealthCheck
from health_check.checks import Database
from health_check.exceptions import HealthCheckException, ServiceUnavailable

from core import embedded_db as embedded

logger = logging.getLogger(__name__)

CLUSTER_SERVICE = "courtside-cluster"  # the registry's name for the task cluster's instances
_MIGRATED_FOR = 60.0  # a "migrated" answer is reused this many seconds (reading the migration graph is not free)


@dataclasses.dataclass
class Migrations(HealthCheck):
    """Every migration of the public schema's apps is applied (tenant schemas are the migration tools' work)."""

    _lock = threading.Lock()
    _migrated_until = 0.0

    def run(self) -> None:
        if time.monotonic() < Migrations._migrated_until:
            return
        connection.set_schema_to_public()
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        pending = [migration for migration, _backwards in plan
                   if router.allow_migrate(connection.alias, migration.app_label)]
        if pending:
            raise ServiceUnavailable(f"{len(pending)} unapplied migrations in the public schema")
        with Migrations._lock:
            Migrations._migrated_until = time.monotonic() + _MIGRATED_FOR


def pending_public_migrations() -> int:
    """How many migrations the public schema lacks (the metrics read it too)."""
    connection.set_schema_to_public()
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return sum(1 for migration, _ in plan if router.allow_migrate(connection.alias, migration.app_label))


@dataclasses.dataclass
class ClusterHeartbeat(HealthCheck):
    """Some task cluster heartbeated into the registry within max_age seconds."""

    max_age: float = 45.0

    def run(self) -> None:
        instance = apps.get_model("services", "ServiceInstance")
        connection.set_schema_to_public()
        cutoff = timezone.now() - dt.timedelta(seconds=self.max_age)
        if not instance.objects.filter(name=CLUSTER_SERVICE, last_heartbeat__gte=cutoff).exists():
            raise ServiceUnavailable(f"no task cluster heartbeat in the last {self.max_age:g} s")


@dataclasses.dataclass
class EmbeddedPostgres(HealthCheck):
    """The embedded PostgreSQL server (development without DATABASE_URL) is running."""

    def run(self) -> None:
        if not embedded.status().get("running"):
            raise ServiceUnavailable("the embedded PostgreSQL is not running")


def readiness_checks() -> dict[str, HealthCheck]:
    """The checks /readyz runs, by the name its answer gives them."""
    checks: dict[str, HealthCheck] = {"database": Database(), "migrations": Migrations()}
    if getattr(settings, "HEALTH_CHECK_CLUSTER", True):
        checks["cluster"] = ClusterHeartbeat(max_age=float(getattr(settings, "HEALTH_CLUSTER_MAX_AGE", 45.0)))
    if getattr(settings, "REDIS_URL", ""):
        from health_check.contrib.redis import Redis
        from redis.asyncio import Redis as RedisClient

        url = settings.REDIS_URL
        checks["redis"] = Redis(client_factory=lambda: RedisClient.from_url(url, socket_timeout=2,
                                                                            socket_connect_timeout=2))
    if getattr(settings, "COURTSIDE_EMBEDDED_DATABASE", False):
        checks["embedded_server"] = EmbeddedPostgres()  # not "postgres": the body names no product
    return checks


def _run(check: HealthCheck) -> bool:
    try:
        if inspect.iscoroutinefunction(check.run):
            asyncio.run(asyncio.wait_for(check.run(), check.timeout.total_seconds()))
        else:
            check.run()
    except HealthCheckException as error:
        logger.warning("Readiness check %s failed: %s", type(check).__name__, error)
        return False
    except Exception:  # noqa: BLE001 - any failure is "not ready"; the detail goes to the log only
        logger.warning("Readiness check %s failed", type(check).__name__, exc_info=True)
        return False
    return True


def readiness() -> tuple[bool, dict[str, str]]:
    results = {name: "ok" if _run(check) else "unavailable" for name, check in readiness_checks().items()}
    return all(value == "ok" for value in results.values()), results


class HealthMiddleware:
    """Answers GET/HEAD /healthz and /readyz on any host, before the tenant lookup and the HTTPS redirect."""

    PATHS = ("/healthz", "/readyz")

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        path = request.path_info.rstrip("/")
        if path not in self.PATHS or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        from django.http import JsonResponse

        if path == "/healthz":
            response = JsonResponse({"status": "ok"})
        else:
            ready, results = readiness()
            response = JsonResponse({"status": "ok" if ready else "unavailable", "checks": results},
                                    status=200 if ready else 503)
        response["Cache-Control"] = "no-store"
        return response
