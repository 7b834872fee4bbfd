"""System checks of the registry's settings: refuse at start-up what would misbehave at run time."""

from django.core import checks

from registry import conf
from registry.models import MAX_CHECK_INTERVAL

_POSITIVE = ("MIN_CHECK_INTERVAL", "DEFAULT_TTL", "SELF_PRESERVATION_WINDOW", "SELF_TTL", "SELF_HEARTBEAT_EVERY",
             "CONSUL_MIRROR_TTL", "CONSUL_MIRROR_DEREGISTER_AFTER")


@checks.register("services")
def check_settings(app_configs=None, **kwargs):
    errors = []
    try:
        values = {name: conf.get(name) for name in conf.DEFAULTS}
    except Exception as error:  # noqa: BLE001 - an unreadable env var is itself the finding
        return [checks.Error(str(error), id="services.E001")]
    for name in _POSITIVE:
        if not isinstance(values[name], int | float) or values[name] <= 0:
            errors.append(checks.Error(f"SERVICES[{name!r}] must be a positive number of seconds.",
                                       id="services.E002"))
    if not 0 < values["SELF_PRESERVATION_THRESHOLD"] < 1:
        errors.append(checks.Error("SERVICES['SELF_PRESERVATION_THRESHOLD'] must be a share between 0 and 1.",
                                   hint="Eureka's rule uses 0.15: more than 15% of heartbeats missed at once.",
                                   id="services.E003"))
    if not isinstance(values["SELF_PRESERVATION_MIN_MISSED"], int) or values["SELF_PRESERVATION_MIN_MISSED"] < 1:
        errors.append(checks.Error("SERVICES['SELF_PRESERVATION_MIN_MISSED'] must be a whole number of at least 1.",
                                   hint="2: a lapse alone is a death, never a partition.", id="services.E007"))
    if values["DEFAULT_TTL"] < values["MIN_CHECK_INTERVAL"]:
        errors.append(checks.Error("SERVICES['DEFAULT_TTL'] is below MIN_CHECK_INTERVAL: every default "
                                   "registration would be refused.", id="services.E004"))
    for name in ("DEFAULT_TTL", "SELF_TTL"):
        if isinstance(values[name], int | float) and not values[name] <= MAX_CHECK_INTERVAL:
            errors.append(checks.Error(f"SERVICES[{name!r}] is above the longest TTL a check may have "
                                       f"({MAX_CHECK_INTERVAL:g} s): those registrations would be refused.",
                                       id="services.E005"))
    if values["CONSUL_MIRROR_DEREGISTER_AFTER"] < values["CONSUL_MIRROR_TTL"]:
        errors.append(checks.Error("SERVICES['CONSUL_MIRROR_DEREGISTER_AFTER'] is shorter than CONSUL_MIRROR_TTL: "
                                   "a stale Consul mirror would vanish before it is ever shown critical.",
                                   id="services.E006"))
    if values["SELF_TTL"] <= values["SELF_HEARTBEAT_EVERY"]:
        errors.append(checks.Warning("SERVICES['SELF_TTL'] is not longer than SELF_HEARTBEAT_EVERY: Courtside's "
                                     "own processes would flap between passing and critical.", id="services.W001"))
    return errors
