"""A/B experiments: `experiments.<name>` picks one of N weighted variants per tenant (and user), stably.

    experiments:
      score_card:
        enabled: true                       # false (the kill switch) or absent: everyone gets the control
        control: classic                    # one of the variants
        variants: {classic: 50, compact: 30, wide: 20}   # name: weight (0..10000)
        overrides: {lakers: wide}           # per tenant, wins over the hash while the experiment runs

Assignment is sticky: sha256("<experiment>:<schema>[:<user>]") picks a point
in [0, total weight), and the variants, sorted by name, cover that range by
their weights. The same subject gets the same variant in every process and
after restarts (no state is kept); changing the weights moves only the
subjects whose point changes range. The operator's own view ("public") always
gets the control and is never counted.

Exposures (one per evaluation a tenant's request or task makes) are counted in
memory and written in batches: the listener thread flushes every
FLUSH_SECONDS, and at exit; never a write per evaluation. A process killed
hard loses at most its last FLUSH_SECONDS of counts.
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import itertools
import logging
import threading
import time
from collections import Counter

from django.db import connections, transaction

from configuration.layers import PUBLIC
from configuration.models import ExperimentExposure
from tenants.models import Tenant

logger = logging.getLogger("configuration")

FLUSH_SECONDS = 5.0
MEMO_LIMIT = 10_000  # assignments memoised per snapshot (per-user ones could otherwise grow without bound)


def point(name: str, subject: str, total: int) -> int:
    """The subject's stable place in [0, total) for the experiment."""
    digest = hashlib.sha256(f"{name}:{subject}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % total


def choose(name: str, spec, scope: str, user=None) -> tuple[str | None, bool]:
    """(variant, counted): the variant of the experiment for a view (and user); counted: an exposure to record.

    No such experiment: (None, False). Not enabled (killed), or the operator's
    view: the control, not counted.
    """
    if not isinstance(spec, dict):
        return None, False
    variants = spec.get("variants") or {}
    control = spec.get("control")
    if not spec.get("enabled", False) or scope == PUBLIC:
        return control, False
    override = (spec.get("overrides") or {}).get(scope)
    if override in variants:
        return override, True
    total = sum(weight for weight in variants.values() if isinstance(weight, int) and weight > 0)
    if total <= 0:
        return control, True
    place = point(name, scope if user is None else f"{scope}:{user}", total)
    for variant in sorted(variants):
        weight = variants[variant]
        if isinstance(weight, int) and weight > 0:
            place -= weight
            if place < 0:
                return variant, True
    return control, True  # unreachable: the weights cover [0, total)


def decide(snapshot, name: str, scope: str, user=None) -> tuple[str | None, object]:
    """(variant, exposure counter or None) for a view and user, memoised in the snapshot (config.variant's miss)."""
    subject_user = None if user is None else str(getattr(user, "pk", user))
    variant, counted = choose(name, snapshot.flat.get(f"experiments.{name}"), scope, subject_user)
    found = (variant, exposures.counter(name, scope, variant) if counted else None)
    if len(snapshot.variants) < MEMO_LIMIT:
        snapshot.variants[(name, user)] = found
    return found


class Exposures:
    """Exposure counts of this process not yet written, per (experiment, schema, variant).

    Each key has an itertools.count that an evaluation advances with next(): a
    single C call, atomic under the GIL, so counting takes no lock. A flush reads
    each counter (by advancing it once more, remembered) and writes the deltas.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._counters: dict[tuple, list] = {}  # key -> [itertools.count, its value already taken]
        self._carry: Counter = Counter()  # taken but not yet written (a failed flush keeps them here)
        self._last_flush = time.monotonic()

    def counter(self, name: str, scope: str, variant: str):
        key = (name, scope, variant)
        with self._lock:
            entry = self._counters.get(key)
            if entry is None:
                entry = self._counters[key] = [itertools.count(), 0]
        return entry[0]

    def _take(self) -> Counter:
        with self._lock:
            for key, entry in self._counters.items():
                reached = next(entry[0])  # evaluations so far, plus the reads before this one
                if reached > entry[1]:
                    self._carry[key] += reached - entry[1]
                entry[1] = reached + 1  # this read advanced it too
            return self._carry

    def pending(self) -> dict:
        return dict(self._take())

    def discard(self) -> None:
        self._take()
        with self._lock:
            self._carry = Counter()

    def flush(self) -> int:
        """Write the pending counts in one statement (added to today's rows); the number of rows written."""
        self._take()
        with self._lock:
            pending, self._carry = self._carry, Counter()
            self._last_flush = time.monotonic()
        if not pending:
            return 0
        day = dt.datetime.now(dt.UTC).date()
        rows = [(name, variant, day, count, scope) for (name, scope, variant), count in sorted(pending.items())]
        table, tenants = ExperimentExposure._meta.db_table, Tenant._meta.db_table
        try:
            with transaction.atomic(), connections["default"].cursor() as cursor:
                cursor.executemany(
                    f"INSERT INTO {table} (experiment, variant, day, count, tenant_id) "  # noqa: S608 (our table names)
                    f"SELECT %s, %s, %s, %s, id FROM {tenants} WHERE schema_name = %s "
                    f"ON CONFLICT (experiment, variant, tenant_id, day) "
                    f"DO UPDATE SET count = {table}.count + EXCLUDED.count",
                    rows,
                )
        except Exception:
            with self._lock:  # kept for the next flush: a database restart loses no count
                self._carry.update(pending)
            raise
        return len(rows)

    def maybe_flush(self) -> bool:
        """Flush when FLUSH_SECONDS have passed since the last one (the listener's idle step); True if it wrote."""
        if time.monotonic() - self._last_flush < FLUSH_SECONDS:
            return False
        return self.flush() > 0

    def flush_at_exit(self) -> None:
        try:
            self.flush()
        except Exception as exc:  # the database may already be gone at exit
            logger.warning("configuration: %d exposure counts not written at exit (%s)",
                           sum(self._carry.values()), type(exc).__name__)


exposures = Exposures()
atexit.register(exposures.flush_at_exit)
