"""Settings of the registry: defaults here, overridden by settings.SERVICES or COURTSIDE_SERVICES_* env vars.

Read at call time (not import time), so tests change them with the `settings`
fixture: `settings.SERVICES = {"SELF_REGISTER": True}`.
"""

import os
import sys

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULTS = {
    # Health checks closer together than this are refused (they would swamp the cluster).
    "MIN_CHECK_INTERVAL": 1.0,
    # A registration without checks gets a TTL check of this many seconds.
    "DEFAULT_TTL": 30.0,
    # Registry events (registrations, status changes, evictions) are kept this long.
    "EVENT_RETENTION_DAYS": 30,
    # Check results kept per check.
    "HISTORY_LENGTH": 20,
    # Eureka's self-preservation: more than this share of a service's instances
    # missing heartbeats at once looks like a partition, not mass death.
    "SELF_PRESERVATION_THRESHOLD": 0.15,
    # Services with fewer heartbeat-checked instances than this never enter it:
    # with 1 or 2 instances, one death is already above any sensible share.
    "SELF_PRESERVATION_MIN_INSTANCES": 3,
    # ... and it takes at least this many lapses at once: a lapse alone is a death, never a partition. Without it,
    # one death in a service of under 7 instances (two web servers and a restarted one: 1 of 3) is over 15% and
    # froze expiry for a whole window. 1 is Eureka's rule unmodified.
    "SELF_PRESERVATION_MIN_MISSED": 2,
    # "At once" means: heartbeats that lapsed within this many seconds.
    "SELF_PRESERVATION_WINDOW": 60.0,
    # HTTP and TCP checks run concurrently, at most this many at a time.
    "CHECK_CONCURRENCY": 64,
    # The cluster's scheduler fires every ~30 s at best; one sweep task keeps
    # checking due checks for this many seconds so intervals under 30 s hold.
    "SWEEP_BUDGET_SECONDS": 20.0,
    # A known service token is remembered this long per process (a rotated one works at most this long).
    "TOKEN_CACHE_SECONDS": 5.0,
    # Longest wait a blocking discovery query may ask for.
    "MAX_BLOCKING_WAIT": 60.0,
    # Dogfooding: the web and cluster processes register themselves.
    "SELF_REGISTER": None,  # None: on, except under the test settings
    # False keeps the health sweep's and the Consul sync's system schedules off (registry/tasks.py); None: they
    # are on wherever the task layer reconciles its system schedules (after migrate, not under the tests).
    "AUTO_SCHEDULE": None,
    # Each of Courtside's own processes heartbeats from a thread this often, with or without traffic.
    "SELF_HEARTBEAT_EVERY": 10.0,
    "SELF_TTL": 60.0,
    # Optional Consul agent for two-way sync, e.g. http://127.0.0.1:8500
    "CONSUL_URL": "",
    "CONSUL_TOKEN": "",
    # An instance mirrored from Consul that no sync confirmed for this long (three sync periods) turns critical,
    # and is removed after the second; the next sync that finds it in Consul brings it back.
    "CONSUL_MIRROR_TTL": 180.0,
    "CONSUL_MIRROR_DEREGISTER_AFTER": 3600.0,
    # etcd mirror (registry/etcd.py, `manage.py etcd_mirror`): client URL, e.g. http://127.0.0.1:2379
    "ETCD_URL": "",
    # Our instances are keys <ETCD_PREFIX>/instances/<service id>; keys there of another origin are pulled in.
    "ETCD_PREFIX": "/courtside/registry",
    "ETCD_ORIGIN": "courtside",
    # Lease TTL of an instance without a TTL check (one with one gets its TTL).
    "ETCD_LEASE_TTL": 30.0,
    # Seconds between pushes (watched events apply as they come), and between retries while etcd is away.
    "ETCD_SYNC_EVERY": 1.0,
    "ETCD_RETRY_SECONDS": 0.2,
    # etcd calls of one push in flight at once (etcd commits concurrent writes together).
    "ETCD_CONCURRENCY": 16,
    # The project's own health-check kinds: modules (a list, or comma-separated in the env var) imported when
    # the app is ready; each registers its kinds with @registry.kinds.register. See registry/README.md.
    "CHECK_KINDS": "",
}

_ENV_CASTS = {bool: lambda v: v.strip().lower() in ("1", "true", "yes", "on"), float: float, int: int, str: str}


def get(name: str):
    """One setting: SERVICES[name] in settings, else COURTSIDE_SERVICES_<NAME>, else the default."""
    if name not in DEFAULTS:
        raise ImproperlyConfigured(f"Unknown services setting {name!r}.")
    configured = getattr(settings, "SERVICES", {}) or {}
    if name in configured:
        return configured[name]
    raw = os.environ.get(f"COURTSIDE_SERVICES_{name}")
    default = DEFAULTS[name]
    if raw is not None:
        cast = _ENV_CASTS.get(type(default), str) if default is not None else _ENV_CASTS[bool]
        try:
            return cast(raw)
        except ValueError as error:
            raise ImproperlyConfigured(f"COURTSIDE_SERVICES_{name}={raw!r} is not a valid value.") from error
    return default


def _on_except_under_tests(name: str) -> bool:
    value = get(name)
    if value is not None:
        return bool(value)
    # Off under the test settings (and the tests' own settings modules, e.g. a test cluster's) and under
    # pytest, so other apps' tests never pay for it nor find the registry's rows and schedules in their database.
    module = getattr(settings, "SETTINGS_MODULE", "") or ""
    return not (module.endswith(".test") or module.startswith("tests.") or "pytest" in sys.modules)


def check_kind_modules() -> list[str]:
    value = get("CHECK_KINDS") or ()
    if isinstance(value, str):
        value = value.split(",")
    return [module.strip() for module in value if module.strip()]


def self_register_enabled() -> bool:
    return _on_except_under_tests("SELF_REGISTER")
