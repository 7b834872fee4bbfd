"""Health-check kinds: the interface and registry (`base`), and the built-in kinds, one module each.

    from registry import kinds
    kinds.get("http").probe(...)      kinds.probed()      kinds.choices()

A project adds its own kind with one module (see registry/README.md, "Your own check kind") and lists it in
`SERVICES["CHECK_KINDS"]`; the app imports those modules when it is ready.
"""

from registry.kinds import http, postgres, redis, tcp, ttl  # noqa: F401 - importing a kind module registers it
from registry.kinds.base import (  # noqa: F401 - the public names of the interface
    INTEGER,
    PROBE_FIELDS,
    SECRET,
    TEXT,
    CheckKind,
    choices,
    generation,
    get,
    load,
    names,
    probed,
    register,
    secret_fields,
    spec_fields,
    spec_keys,
    unknown_kind_message,
    unregister,
)
