"""The health-check kind interface and the registry of kinds (after NetBox's `netbox/registry.py`).

A kind is one module that subclasses `CheckKind` and decorates it with `@register`: it declares the spec
fields it reads, how a spec becomes check fields, what makes a check of it invalid, how it is probed, how
Consul sees it and how the admin labels it. Every place that used to switch on `kind` (the model's choices
and clean(), spec parsing, the probes, the sweep's list of probed kinds, the Consul definition, the admin
and the API's request fields) asks this registry instead, so a new kind is its module plus the line that
imports it (the setting `SERVICES["CHECK_KINDS"]`, or an `import` in the project's own AppConfig.ready).

Nothing here imports the models: the models import this module (their choices), not the other way round.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import import_module
from typing import ClassVar

from django.core.exceptions import ImproperlyConfigured

from registry.status import Status

# What a spec field is, for the API's request serializer: text, a whole number, or a secret (text that is
# written, never read back: masked in the admin, the API, logs and events).
TEXT, INTEGER, SECRET = "text", "integer", "secret"


class CheckKind:
    """One kind of health check. Subclass, set the class attributes, override what differs, `@register`."""

    name: ClassVar[str] = ""  # stored in HealthCheck.kind and given as "type" (or "kind") in a spec; <= 32 chars
    label: ClassVar[str] = ""  # the admin's and the API document's name for it
    probed: ClassVar[bool] = True  # run by the health sweep; False: passed by heartbeats (ttl)
    interval_keys: ClassVar[tuple[str, ...]] = ("interval",)  # spec keys of its interval, first given wins
    # Its own spec keys and what each is: TEXT (or (TEXT, max length); 500 by default), INTEGER or SECRET.
    spec_fields: ClassVar[dict[str, str | tuple[str, int]]] = {}
    order: ClassVar[int] = 100  # place in lists and messages (built-ins first), then registration order

    def default_interval(self, conf) -> float:
        return 10.0

    def fields_from_spec(self, spec: dict, *, host: str) -> dict:
        """HealthCheck field values from the kind's own spec keys; raise ValidationError({key: message}).

        A kind without columns of its own keeps what it needs in `params` (a JSON object)."""
        return {}

    def spec_from_check(self, check) -> dict:
        """The kind's spec keys of a stored check (the admin re-registers an instance with its checks)."""
        return {}

    def clean(self, check) -> dict[str, str]:
        """Errors by field of a check of this kind (run by HealthCheck.clean, so the admin shows them too)."""
        return {}

    def target(self, check) -> str:
        """What the admin shows as the check's target; never a secret."""
        return ""

    async def probe(self, check: dict, *, http) -> tuple[str, str]:
        """(status, output) of one run, before flap damping; `check` holds PROBE_FIELDS, `http` is shared.

        Exceptions are the sweep's: OSError and httpx errors become critical with their message, and the
        whole probe is bounded by the check's timeout.
        """
        raise NotImplementedError(f"The {self.name} check kind is not probed by the sweep.")

    def consul_definition(self, check) -> dict:
        """The kind's part of Consul's check definition. Default: a TTL check whose status each sync sets,
        long enough to outlast the time between syncs (Consul runs no such probe itself)."""
        return {"TTL": f"{max(check.interval * 3, 180.0):g}s"}


# The columns of a HealthCheck a probe reads (the sweep selects them with .values()).
PROBE_FIELDS = ("pk", "kind", "http_url", "http_expected_status", "tcp_host", "tcp_port", "timeout", "params",
                "secret")
# Every spec key common to all kinds (the kind's own come from spec_fields).
COMMON_SPEC_KEYS = frozenset({"name", "kind", "type", "interval", "timeout", "failures_before_critical",
                              "successes_before_passing", "deregister_critical_after"})

_KINDS: dict[str, CheckKind] = {}
_generation = [0]  # moves with every register/unregister, so what is built from the kinds can be rebuilt


def generation() -> int:
    return _generation[0]


def register(kind_class: type[CheckKind]) -> type[CheckKind]:
    """Class decorator: add a kind to the registry. A second kind of the same name is a configuration error."""
    kind = kind_class()
    if not kind.name or len(kind.name) > 32 or not kind.name.isidentifier() or kind.name != kind.name.lower():
        raise ImproperlyConfigured(f"A check kind needs a lowercase identifier of at most 32 characters as its name, "
                                   f"not {kind.name!r}.")
    existing = _KINDS.get(kind.name)
    if existing is not None and type(existing).__qualname__ != kind_class.__qualname__:
        raise ImproperlyConfigured(f"Two check kinds are named {kind.name!r}: {type(existing)} and {kind_class}.")
    _KINDS[kind.name] = kind
    ordered = sorted(_KINDS.values(), key=lambda k: k.order)  # stable: registration order within one order
    _KINDS.clear()
    _KINDS.update((k.name, k) for k in ordered)
    _generation[0] += 1
    return kind_class


def unregister(name: str) -> None:
    """Remove a kind (tests that register an example kind clean up with this)."""
    _KINDS.pop(name, None)
    _generation[0] += 1


def get(name: str) -> CheckKind | None:
    return _KINDS.get(name)


def names() -> list[str]:
    return list(_KINDS)


def probed() -> list[str]:
    """The kinds the health sweep runs."""
    return [name for name, kind in _KINDS.items() if kind.probed]


def choices() -> list[tuple[str, str]]:
    """HealthCheck.kind's choices (a callable, so registering a kind needs no migration)."""
    return [(name, kind.label or name) for name, kind in _KINDS.items()]


def spec_fields() -> dict[str, str]:
    """Every kind's own spec keys, for the API's request serializer."""
    fields: dict[str, str] = {}
    for kind in _KINDS.values():
        fields.update(kind.spec_fields)
    return fields


def secret_fields() -> set[str]:
    return {key for key, what in spec_fields().items() if what == SECRET}


def spec_keys() -> frozenset[str]:
    """Every key a check spec may have (a key of any kind is accepted, as it always was)."""
    keys = set(COMMON_SPEC_KEYS)
    for kind in _KINDS.values():
        keys.update(kind.interval_keys, kind.spec_fields)
    return frozenset(keys)


def unknown_kind_message(kind: str) -> str:
    known = names()
    listed = ", ".join(known[:-1]) + f" or {known[-1]}" if len(known) > 1 else "".join(known)
    return f"unknown check type {kind or '(none)'!r}; use {listed}."


def load(modules: Iterable[str]) -> None:
    """Import the project's own kind modules (SERVICES["CHECK_KINDS"]); importing one registers its kinds."""
    for module in modules:
        import_module(module)


__all__ = ["CheckKind", "INTEGER", "PROBE_FIELDS", "SECRET", "Status", "TEXT", "choices", "generation", "get",
           "load", "names", "probed", "register", "secret_fields", "spec_fields", "spec_keys", "unknown_kind_message",
           "unregister"]
