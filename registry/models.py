"""Service registry: instances, their health checks, check history, events, tokens, counters.

Everything lives in the public schema (services is a shared app) and is only
reachable from the operator site, never from a tenant's domain.
"""

import math
import re

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import (
    MaxValueValidator,
    MinValueValidator,
    ProhibitNullCharactersValidator,
    RegexValidator,
)
from django.db import models

from registry import conf, kinds
from registry.status import STATUS_SEVERITY, Status  # noqa: F401 - re-exported: the models' statuses

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


class Source(models.TextChoices):
    COURTSIDE = "courtside", "Courtside"
    CONSUL = "consul", "Consul"
    ETCD = "etcd", "etcd"


class ServiceToken(models.Model):
    """The credential of one service: only its SHA-256 is stored, the token is shown once."""

    service_name = models.CharField(
        "service name", max_length=63, unique=True, validators=[service_name_validator],
        help_text="Instances of this service register and heartbeat with this token.",
    )
    token_hash = models.CharField(
        "token hash", max_length=64, unique=True, editable=False, help_text="SHA-256 of the token, hex."
    )
    token_prefix = models.CharField(
        "token prefix", max_length=16, editable=False, help_text="First characters, to tell tokens apart."
    )
    created_at = models.DateTimeField("created at", auto_now_add=True)

    class Meta:
        verbose_name = "service token"
        ordering = ["service_name"]

    def __str__(self) -> str:
        return f"{self.service_name} ({self.token_prefix}…)"


class ServiceInstance(models.Model):
    """One running instance of a service, at a host and port, with its own health."""

    service_id = models.CharField(
        "service id", max_length=128, unique=True, validators=[service_id_validator],
        help_text="Unique across the registry; re-registering the same id updates the instance.",
    )
    name = models.CharField(
        "service name", max_length=63, validators=[service_name_validator], db_index=True,
        help_text="Discovery looks instances up by this name.",
    )
    host = models.CharField("host", max_length=253, validators=[host_validator],
                            help_text="Host name or IP address clients connect to.")
    port = models.PositiveIntegerField(
        "port", null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)],
        help_text="1 to 65535. Empty only for Courtside's own task-cluster processes, which listen on no port.",
    )
    tags = ArrayField(
        models.CharField(max_length=MAX_TAG_LENGTH, validators=[no_nul]), default=list, blank=True, verbose_name="tags",
        help_text="Free labels such as api or production; discovery filters on all given tags.",
    )
    metadata = models.JSONField("metadata", default=dict, blank=True, help_text="Free key/value data.")
    weight = models.PositiveIntegerField(
        "weight", default=1, validators=[MinValueValidator(1), MaxValueValidator(100)],
        help_text="Share of round-robin traffic relative to the other instances (1 to 100).",
    )
    status = models.CharField(
        "status", max_length=16, choices=Status.choices, default=Status.CRITICAL, db_index=True,
        help_text="Worst of the checks' statuses, or maintenance. New instances start critical, as in Consul.",
    )
    maintenance = models.BooleanField(
        "in maintenance", default=False, help_text="Taken out of discovery by an operator; checks keep running."
    )
    source = models.CharField(
        "source", max_length=16, choices=Source.choices, default=Source.COURTSIDE,
        help_text="Where the instance was registered: here, or pulled from Consul's catalog.",
    )
    registered_at = models.DateTimeField("registered at", auto_now_add=True)
    last_heartbeat = models.DateTimeField(
        "last heartbeat", null=True, blank=True, help_text="Last heartbeat received; TTL checks expire from it."
    )
    updated_at = models.DateTimeField("updated at", auto_now=True)

    class Meta:
        verbose_name = "service instance"
        ordering = ["name", "service_id"]
        indexes = [
            models.Index(fields=["name", "status"], name="services_instance_name_status"),
            GinIndex(fields=["tags"], name="services_instance_tags_gin"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(port__isnull=True) | models.Q(port__gte=1, port__lte=65535),
                name="services_instance_port",
            ),
            models.CheckConstraint(condition=models.Q(weight__gte=1, weight__lte=100), name="services_instance_weight"),
            models.CheckConstraint(condition=~models.Q(name=""), name="services_instance_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name}/{self.service_id}"

    def clean(self):
        if self.name in RESERVED_SERVICE_NAMES:
            raise ValidationError({"name": f"{self.name!r} is reserved by the registry's API."})
        if len(self.tags or []) > MAX_TAGS:
            raise ValidationError({"tags": f"At most {MAX_TAGS} tags."})
        if any(not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH for tag in self.tags or []):
            raise ValidationError({"tags": f"Tags are 1 to {MAX_TAG_LENGTH} characters."})
        if self.host in UNROUTABLE_HOSTS:
            raise ValidationError({"host": f"{self.host} is no address a client can connect to."})
        problem = metadata_problem(self.metadata)
        if problem:
            raise ValidationError({"metadata": problem})

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}" if self.port else self.host


class HealthCheck(models.Model):
    """A check of one instance, of a registered kind (registry.kinds: ttl, http, tcp, …), with flap damping."""

    instance = models.ForeignKey(
        ServiceInstance, on_delete=models.CASCADE, related_name="checks", verbose_name="instance"
    )
    name = models.CharField("name", max_length=64, validators=[no_nul], help_text="Unique within the instance.")
    # The kinds are code (registry.kinds), not schema: registering one needs no migration.
    kind = models.CharField("kind", max_length=32, choices=kinds.choices)
    interval = models.FloatField(
        "interval (s)", default=10.0,
        validators=[finite_validator, MaxValueValidator(MAX_CHECK_INTERVAL, "At most 86400 s (a day).")],
        help_text="Seconds between runs; for TTL, the time-to-live of a heartbeat. At most a day.",
    )
    timeout = models.FloatField(
        "timeout (s)", default=5.0,
        validators=[finite_validator, MaxValueValidator(MAX_CHECK_TIMEOUT, "At most 60 s.")],
        help_text="HTTP and TCP: give up after this long (at most 60 s).",
    )
    http_url = models.URLField("HTTP URL", max_length=500, blank=True, validators=[no_nul],
                               help_text="HTTP checks: the URL to GET.")
    http_expected_status = models.PositiveIntegerField(
        "expected HTTP status", null=True, blank=True, validators=[MinValueValidator(100), MaxValueValidator(599)],
        help_text="Empty means any 2xx passes.",
    )
    tcp_host = models.CharField("TCP host", max_length=253, blank=True, validators=[host_validator],
                                help_text="TCP checks: host to connect to.")
    tcp_port = models.PositiveIntegerField(
        "TCP port", null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    params = models.JSONField(
        "parameters", default=dict, blank=True,
        help_text="What a check kind without columns of its own needs (registry.kinds); never a secret.",
    )
    secret = models.JSONField(
        "secret", null=True, blank=True, editable=False,
        help_text="A kind's secret (a DSN with its password), sealed at rest; never shown or returned.",
    )
    failures_before_critical = models.PositiveIntegerField(
        "failures before critical", default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_FLAP_THRESHOLD)],
        help_text="Consecutive failures before a passing check turns critical (flap damping).",
    )
    successes_before_passing = models.PositiveIntegerField(
        "successes before passing", default=1,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_FLAP_THRESHOLD)],
        help_text="Consecutive successes before a failing check turns passing (flap damping).",
    )
    deregister_critical_after = models.FloatField(
        "deregister after critical for (s)", null=True, blank=True,
        validators=[finite_validator, MinValueValidator(0),
                    MaxValueValidator(MAX_DEREGISTER_AFTER, "At most 2592000 s (30 days).")],
        help_text="Grace period: the instance is deregistered once this check has been critical this long "
        "(at most 30 days). Empty means never. Keep it much longer than any recoverable outage.",
    )
    status = models.CharField("status", max_length=16, choices=Status.choices, default=Status.CRITICAL)
    consecutive_failures = models.PositiveIntegerField("consecutive failures", default=0)
    consecutive_successes = models.PositiveIntegerField("consecutive successes", default=0)
    critical_since = models.DateTimeField("critical since", null=True, blank=True)
    last_checked_at = models.DateTimeField("last checked at", null=True, blank=True)
    next_check_at = models.DateTimeField("next check at", null=True, blank=True, db_index=True)
    output = models.TextField("last output", blank=True)

    class Meta:
        verbose_name = "health check"
        ordering = ["instance_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["instance", "name"], name="services_check_unique_name"),
            models.CheckConstraint(
                condition=~models.Q(kind="http") | ~models.Q(http_url=""), name="services_check_http_has_url"
            ),
            models.CheckConstraint(
                condition=~models.Q(kind="tcp") | models.Q(tcp_port__isnull=False), name="services_check_tcp_has_port"
            ),
            # NaN fails these too: PostgreSQL orders NaN above every number.
            models.CheckConstraint(condition=models.Q(interval__gt=0, interval__lte=MAX_CHECK_INTERVAL),
                                   name="services_check_interval_range",
                                   violation_error_message="The interval is 0 to 86400 s."),
            models.CheckConstraint(condition=models.Q(timeout__gt=0, timeout__lte=MAX_CHECK_TIMEOUT),
                                   name="services_check_timeout_range",
                                   violation_error_message="The timeout is 0 to 60 s."),
            models.CheckConstraint(
                condition=models.Q(deregister_critical_after__isnull=True)
                | models.Q(deregister_critical_after__gte=0, deregister_critical_after__lte=MAX_DEREGISTER_AFTER),
                name="services_check_grace_range", violation_error_message="The grace period is 0 to 30 days.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instance_id}:{self.name} ({self.kind})"

    def clean(self):
        errors = {}
        floor = conf.get("MIN_CHECK_INTERVAL")
        if self.interval is None or not self.interval >= floor:  # "not >=": NaN fails too
            errors["interval"] = f"The interval must be at least {floor:g} s."
        if self.timeout is None or not self.timeout > 0:
            errors["timeout"] = "The timeout must be positive."
        kind = kinds.get(self.kind)
        if kind is None:
            errors["kind"] = kinds.unknown_kind_message(self.kind)
        else:
            errors.update(kind.clean(self))
        if self.deregister_critical_after is not None and not self.deregister_critical_after >= 0:
            errors["deregister_critical_after"] = "The grace period cannot be negative."
        if errors:
            raise ValidationError(errors)


class CheckResult(models.Model):
    """One outcome of a check; only the latest few per check are kept."""

    health_check = models.ForeignKey(
        HealthCheck, on_delete=models.CASCADE, related_name="results", verbose_name="check"
    )
    at = models.DateTimeField("at", db_index=True)
    ok = models.BooleanField("succeeded")
    status = models.CharField("check status after", max_length=16, choices=Status.choices)
    output = models.TextField("output", blank=True)
    duration_ms = models.FloatField("duration (ms)", default=0)

    class Meta:
        verbose_name = "check result"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.health_check_id} {'ok' if self.ok else 'failed'} at {self.at:%H:%M:%S}"


class RegistryEvent(models.Model):
    """What happened in the registry: registrations, status changes, evictions, self-preservation."""

    class Kind(models.TextChoices):
        REGISTERED = "registered", "Registered"
        UPDATED = "updated", "Re-registered"
        DEREGISTERED = "deregistered", "Deregistered"
        EVICTED = "evicted", "Deregistered after critical grace"
        STATUS = "status", "Status changed"
        MAINTENANCE = "maintenance", "Maintenance changed"
        SELF_PRESERVATION_ON = "self_preservation_on", "Self-preservation started"
        SELF_PRESERVATION_OFF = "self_preservation_off", "Self-preservation ended"
        CONSUL_SYNC = "consul_sync", "Consul sync"
        INVALID = "invalid", "Out-of-range value found"

    at = models.DateTimeField("at", auto_now_add=True, db_index=True)
    kind = models.CharField("kind", max_length=32, choices=Kind.choices)
    service_name = models.CharField("service name", max_length=63, blank=True, db_index=True)
    service_id = models.CharField("service id", max_length=128, blank=True)
    message = models.TextField("message", blank=True)
    detail = models.JSONField("detail", default=dict, blank=True)

    class Meta:
        verbose_name = "registry event"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind} {self.service_name}/{self.service_id}"


class SelfPreservation(models.Model):
    """Eureka's self-preservation, per service: while active, missed heartbeats evict nobody."""

    service_name = models.CharField("service name", max_length=63, unique=True)
    active = models.BooleanField("active", default=False)
    since = models.DateTimeField("since", null=True, blank=True)
    missed = models.PositiveIntegerField("instances that missed heartbeats", default=0)
    total = models.PositiveIntegerField("instances with heartbeats", default=0)
    evaluated_at = models.DateTimeField("evaluated at", null=True, blank=True)

    class Meta:
        verbose_name = "self-preservation state"
        ordering = ["service_name"]

    def __str__(self) -> str:
        return f"{self.service_name}: {'active' if self.active else 'inactive'}"


class RegistryCounter(models.Model):
    """A shared counter: a service's round-robin position, or its change index for blocking queries.

    Bumped by one INSERT ... ON CONFLICT DO UPDATE ... RETURNING, so every web
    process shares the same position (a per-process itertools.cycle would not).
    """

    key = models.CharField("key", max_length=300, primary_key=True, help_text="rr:<name>|<tags> or index:<name>.")
    value = models.BigIntegerField("value", default=0)

    class Meta:
        verbose_name = "registry counter"
        ordering = ["key"]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"
