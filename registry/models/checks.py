"""Health checks of instances (of a kind from registry.kinds, with flap damping) and their recent results."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from registry import conf, kinds
from registry.models.instances import ServiceInstance
from registry.models.validation import (
    MAX_CHECK_INTERVAL,
    MAX_CHECK_TIMEOUT,
    MAX_DEREGISTER_AFTER,
    MAX_FLAP_THRESHOLD,
    finite_validator,
    host_validator,
    no_nul,
)
from registry.status import Status


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
