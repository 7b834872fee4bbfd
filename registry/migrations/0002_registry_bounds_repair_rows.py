"""Bring every stored check duration into the bounds that 0003 adds as constraints (issue 14.3).

Rows written before the bounds could hold a TTL of 1e30 s, NaN or a negative
grace: the sweep's arithmetic failed on them, for every instance. Each such
value is clamped into range (a TTL of 1e30 s becomes a day, so an instance
that stopped heartbeating expires at last) and a registry event "invalid"
records the old and the new value. The bounds are frozen here, as they were
when this migration was written.
"""

import math

from django.db import migrations
from django.db.models import Q

MAX_CHECK_INTERVAL = 86_400.0
MIN_CHECK_INTERVAL = 1.0
MAX_CHECK_TIMEOUT = 60.0
MAX_DEREGISTER_AFTER = 30 * 86_400.0
DEFAULT_INTERVAL = {"ttl": 30.0, "http": 10.0, "tcp": 10.0}
DEFAULT_TIMEOUT = 5.0


def _clamp(value, *, low, high, when_nan):
    """The value brought into [low, high]; None when it already was."""
    if math.isnan(value):
        return when_nan
    clamped = min(max(value, low), high)
    return None if clamped == value else clamped


def repair(apps, schema_editor):
    HealthCheck = apps.get_model("services", "HealthCheck")
    RegistryEvent = apps.get_model("services", "RegistryEvent")
    out_of_range = (
        ~Q(interval__gt=0, interval__lte=MAX_CHECK_INTERVAL) | ~Q(timeout__gt=0, timeout__lte=MAX_CHECK_TIMEOUT)
        | Q(deregister_critical_after__lt=0) | Q(deregister_critical_after__gt=MAX_DEREGISTER_AFTER)
    )
    for check in HealthCheck.objects.filter(out_of_range).select_related("instance").iterator():
        changes = {}
        interval = _clamp(check.interval, low=MIN_CHECK_INTERVAL, high=MAX_CHECK_INTERVAL,
                          when_nan=DEFAULT_INTERVAL.get(check.kind, 10.0))
        if interval is not None:
            changes["interval"] = (check.interval, interval)
        if math.isnan(check.timeout) or check.timeout <= 0:
            changes["timeout"] = (check.timeout, DEFAULT_TIMEOUT)
        elif check.timeout > MAX_CHECK_TIMEOUT:
            changes["timeout"] = (check.timeout, MAX_CHECK_TIMEOUT)
        if check.deregister_critical_after is not None:
            # NaN: the longest grace, so no instance is deregistered sooner than anyone could have meant.
            grace = _clamp(check.deregister_critical_after, low=0.0, high=MAX_DEREGISTER_AFTER,
                           when_nan=MAX_DEREGISTER_AFTER)
            if grace is not None:
                changes["deregister_critical_after"] = (check.deregister_critical_after, grace)
        if not changes:
            continue
        HealthCheck.objects.filter(pk=check.pk).update(**{name: new for name, (_old, new) in changes.items()})
        message = "; ".join(f"{name} {old!r} s out of range, now {new:g} s" for name, (old, new) in changes.items())
        RegistryEvent.objects.create(
            kind="invalid", service_name=check.instance.name, service_id=check.instance.service_id,
            message=f"check {check.name!r}: {message} (migration services 0002)",
            detail={name: {"was": repr(old), "now": new} for name, (old, new) in changes.items()},
        )


class Migration(migrations.Migration):

    dependencies = [
        ("services", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(repair, migrations.RunPython.noop),
    ]
