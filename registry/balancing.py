"""Balancing: weighted, health-aware round-robin over a counter every process shares; tag discovery."""

from __future__ import annotations

import bisect
import itertools

from core.errors import DomainError
from registry import selectors
from registry.events import counter_next

# Discovery by name and tags (the read half, next to the round-robin): `balancing.discover(name, tags=[...])`.
discover = selectors.discover


def next_instance(name: str, *, tags=()) -> selectors.Endpoint:
    """The next routable instance of a service: weighted round-robin on a counter shared by all processes.

    Position p of the shared counter is mapped onto an interleaved sequence in
    which an instance of weight w appears once in each of the first w rounds,
    so weight 3 next to weight 1 gives A B A A, never a burst of one instance
    longer than its weight. Critical and maintenance instances are skipped.
    """
    tags = sorted({tag for tag in tags or () if tag})
    endpoints = selectors.discover(name, tags=tags, status=selectors.ROUTABLE)
    if not endpoints:
        raise DomainError(f"No healthy instance of {name!r}" + (f" tagged {', '.join(tags)}" if tags else "") + ".",
                          code="no_healthy_instance", status=503, detail={"name": name, "tags": tags})
    weights = [endpoint.weight for endpoint in endpoints]
    position = (counter_next(f"rr:{name}|{','.join(tags)}") - 1) % sum(weights)
    ordered = sorted(weights)
    round_number = 0
    while True:  # round r holds the instances heavier than r; at most max(weight) <= 100 rounds
        size = len(ordered) - bisect.bisect_right(ordered, round_number)
        if position < size:
            break
        position -= size
        round_number += 1
    members = (endpoint for endpoint in endpoints if endpoint.weight > round_number)
    return next(itertools.islice(members, position, None))
