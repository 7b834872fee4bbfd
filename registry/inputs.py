"""Type checks of what clients send, for every caller (API, commands, admin, Python).

A list is not a host, 80.5 is not a port. Ranges are the models' validators, run by full_clean.
"""

from __future__ import annotations

import math
import re

from django.core.exceptions import ValidationError

DURATION_PATTERN = re.compile(r"^\s*(?P<value>\d{1,15}(?:\.\d{1,9})?)\s*(?P<unit>ms|s|m|h)?\s*\Z")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def text(value, *, field_name: str) -> str:
    """A string, stripped; None is empty. Anything else is refused, not turned into its repr."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError({field_name: "A string is expected."})
    return value.strip()


def whole_number(value, *, field_name: str) -> int | None:
    """An integer (not a bool, not 80.5, not "80"); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError({field_name: "A whole number is expected."})
    return value


def parse_duration(value, *, field_name: str) -> float | None:
    """Seconds from a number or a Consul-style duration string ("10s", "500ms", "1m"), always finite.

    Strings are never negative; the range of each duration is its model field's (full_clean).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValidationError({field_name: f"{value!r} is not a duration."})
    if isinstance(value, str):
        match = DURATION_PATTERN.match(value)
        if not match:
            raise ValidationError({field_name: f"{value!r} is not a duration such as 10, '10s', '500ms' or '1m'."})
        value = float(match["value"]) * _UNIT_SECONDS[match["unit"]]
    seconds = float(value) if -1e300 < value < 1e300 else math.inf  # an int of 400 digits is no float
    if not math.isfinite(seconds):
        raise ValidationError({field_name: f"{value!r} is not a finite duration."})
    return seconds


def normalize_tags(tags) -> list[str]:
    """A list of strings (or, from Python, one comma-separated string); blanks and repeats dropped."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    if not isinstance(tags, list | tuple) or not all(isinstance(tag, str) for tag in tags):
        raise ValidationError({"tags": "A list of strings is expected."})
    return list(dict.fromkeys(tag.strip() for tag in tags if tag.strip()))
