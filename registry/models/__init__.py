"""Service registry: instances, their health checks, check history, events, tokens, counters.

Everything lives in the public schema (services is a shared app) and is only
reachable from the operator site, never from a tenant's domain.

A package of modules named for what they hold; every name is re-exported here, so code and migrations import
from registry.models as before:

    validation.py    what a client may send: name/id patterns, validators, bounds (MAX_*), metadata_problem
    tokens.py        ServiceToken, a service's credential
    instances.py     Source, ServiceInstance
    checks.py        HealthCheck, CheckResult
    history.py       RegistryEvent
    preservation.py  SelfPreservation
    counters.py      RegistryCounter
    mirror.py        EtcdMirrorState
"""

from registry.models.checks import CheckResult, HealthCheck
from registry.models.counters import RegistryCounter
from registry.models.history import RegistryEvent
from registry.models.instances import ServiceInstance, Source
from registry.models.mirror import EtcdMirrorState
from registry.models.preservation import SelfPreservation
from registry.models.tokens import ServiceToken
from registry.models.validation import (
    MAX_CHECK_INTERVAL,
    MAX_CHECK_TIMEOUT,
    MAX_CHECKS,
    MAX_DEREGISTER_AFTER,
    MAX_FLAP_THRESHOLD,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEY_LENGTH,
    MAX_METADATA_KEYS,
    MAX_METADATA_STRING_LENGTH,
    MAX_METADATA_VALUES,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    RESERVED_SERVICE_NAMES,
    SERVICE_ID_PATTERN,
    SERVICE_NAME_PATTERN,
    UNROUTABLE_HOSTS,
    finite_validator,
    host_validator,
    metadata_problem,
    no_nul,
    service_id_validator,
    service_name_validator,
)
from registry.status import STATUS_SEVERITY, Status

__all__ = [
    "MAX_CHECK_INTERVAL", "MAX_CHECK_TIMEOUT", "MAX_CHECKS", "MAX_DEREGISTER_AFTER", "MAX_FLAP_THRESHOLD",
    "MAX_METADATA_DEPTH", "MAX_METADATA_KEY_LENGTH", "MAX_METADATA_KEYS", "MAX_METADATA_STRING_LENGTH",
    "MAX_METADATA_VALUES", "MAX_TAG_LENGTH", "MAX_TAGS", "RESERVED_SERVICE_NAMES", "SERVICE_ID_PATTERN",
    "SERVICE_NAME_PATTERN", "STATUS_SEVERITY", "UNROUTABLE_HOSTS", "CheckResult", "EtcdMirrorState", "HealthCheck",
    "RegistryCounter",
    "RegistryEvent", "SelfPreservation", "ServiceInstance", "ServiceToken", "Source", "Status", "finite_validator",
    "host_validator", "metadata_problem", "no_nul", "service_id_validator", "service_name_validator",
]
