"""What the registry accepts from a client (API, commands, admin): name and id patterns, validators, bounds.

The models' validators refuse what lies outside these bounds and the database holds the durations as
constraints; the API's serializers and the commands check against the same names.
"""

import math
import re

from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator, RegexValidator

# \Z, not $: a RegexValidator's $ would let a trailing newline through.
SERVICE_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}\Z")
SERVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")
service_name_validator = RegexValidator(
    SERVICE_NAME_PATTERN,
    "Use 1 to 63 lowercase letters, digits, dots, dashes or underscores, starting with a letter or digit.",
)
service_id_validator = RegexValidator(
    SERVICE_ID_PATTERN,
    "Use 1 to 128 letters, digits, dots, dashes, colons, @ or underscores, starting with a letter or digit.",
)
# A host name, an IPv4 address or an IPv6 address (bracketed or not, with a %zone): nothing else.
host_validator = RegexValidator(
    re.compile(r"^[A-Za-z0-9._:%\[\]-]{1,253}\Z"),
    "Use a host name or an IP address (letters, digits, dots, dashes, colons, brackets).",
)
no_nul = ProhibitNullCharactersValidator()
# "Any address": fine to listen on, never one to connect to (Consul refuses it too).
UNROUTABLE_HOSTS = frozenset({"0.0.0.0", "::", "[::]"})

# Bounds of everything a client sends (API, commands, admin): the models' validators refuse what lies outside,
# and the database holds the durations as constraints, so the sweep never computes with a value it cannot hold.
MAX_CHECK_INTERVAL = 86_400.0  # a TTL or a probe interval: one day at most
MAX_CHECK_TIMEOUT = 60.0  # a probe holds a sweep worker no longer than this
# Longest grace a check may give a critical instance before it is deregistered: 30 days.
MAX_DEREGISTER_AFTER = 30 * 86_400.0
MAX_FLAP_THRESHOLD = 100  # failures_before_critical, successes_before_passing
MAX_CHECKS = 16  # per instance
MAX_TAGS = 32  # per instance, and per discovery query
MAX_TAG_LENGTH = 64
# Metadata: at most 64 keys of up to 128 characters, strings of up to 512 (Consul's limits for Meta),
# nested at most 4 deep and 1,000 values in all.
MAX_METADATA_KEYS = 64
MAX_METADATA_KEY_LENGTH = 128
MAX_METADATA_STRING_LENGTH = 512
MAX_METADATA_DEPTH = 4
MAX_METADATA_VALUES = 1_000
_INT64 = 2**63


def finite_validator(value):
    if value is not None and not math.isfinite(value):
        raise ValidationError("Enter a finite number.", code="not_finite")


def metadata_problem(value) -> str | None:
    """Why `value` is not acceptable metadata, or None. Walks it without recursion, so depth cannot hurt."""
    if not isinstance(value, dict):
        return "Metadata is a JSON object."
    if len(value) > MAX_METADATA_KEYS:
        return f"At most {MAX_METADATA_KEYS} metadata keys."
    pending, seen = [(value, 1)], 0
    while pending:
        node, depth = pending.pop()
        seen += 1
        if seen > MAX_METADATA_VALUES:
            return f"At most {MAX_METADATA_VALUES} values in the metadata."
        if isinstance(node, dict | list):
            if depth > MAX_METADATA_DEPTH:
                return f"Metadata nests at most {MAX_METADATA_DEPTH} levels deep."
            if isinstance(node, dict):
                for key in node:
                    if not isinstance(key, str) or not key or len(key) > MAX_METADATA_KEY_LENGTH or "\x00" in key:
                        return f"Metadata keys are 1 to {MAX_METADATA_KEY_LENGTH} characters, without NUL."
                children = node.values()
            else:
                children = node
            pending.extend((child, depth + 1) for child in children)
        elif isinstance(node, str):
            if len(node) > MAX_METADATA_STRING_LENGTH or "\x00" in node:
                return f"Metadata strings are at most {MAX_METADATA_STRING_LENGTH} characters, without NUL."
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if not -_INT64 <= node < _INT64:
                return "Metadata numbers must fit in 64 bits."
        elif isinstance(node, float):
            if not math.isfinite(node):
                return "Metadata numbers must be finite."
        else:
            return f"Metadata cannot hold a {type(node).__name__}."
    return None


# Path segments of the API that a service name must not shadow.
RESERVED_SERVICE_NAMES = frozenset(
    {"register", "heartbeat", "deregister", "maintenance", "tokens", "events", "instances"}
)
