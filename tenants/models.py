"""Tenants (customers), their plans and quotas, usage, API keys and the schema pool."""

import uuid

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Upper
from django_tenants.models import DomainMixin, TenantMixin

from tenants import quotas

RESERVED_SCHEMA_NAMES = frozenset(
    {"public", "information_schema", "pg_catalog", "pg_toast", "template", "www", "admin", "api"}
)
schema_name_validator = RegexValidator(
    r"^[a-z][a-z0-9_]{1,47}$",
    "Use 2 to 48 lowercase letters, digits or underscores, starting with a letter.",
)
color_validator = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a hex colour like #552583.")

# The values of tasks.models.Priority (LOW..CRITICAL), kept here so tenants does not import the task app's
# models; tests/tasks/test_dependencies.py checks they agree.
TASK_PRIORITY_CHOICES = [(0, "Low"), (1, "Normal"), (2, "High"), (3, "Critical")]
# Hard ceilings of any plan's task limits: past these a submission costs more than it is worth checking.
MAX_TASK_BATCH_SIZE = 10_000
MAX_TASK_CHAIN_LENGTH = 10_000
# The task limits of the seeded plans (tenants migration 0007_task_limits writes these values; the test
# fixtures re-apply them after a flush re-seeds the plans): priority, batch size, chain length, unfinished runs.
TASK_LIMITS_BY_PLAN = {
    "FREE": {"max_task_priority": 1, "max_task_batch_size": 20, "max_task_chain_length": 5,
             "max_active_task_runs": 20},
    "STARTER": {"max_task_priority": 2, "max_task_batch_size": 100, "max_task_chain_length": 20,
                "max_active_task_runs": 500},
    "PROFESSIONAL": {"max_task_priority": 2, "max_task_batch_size": 500, "max_task_chain_length": 100,
                     "max_active_task_runs": 5_000},
    "ENTERPRISE": {"max_task_priority": 2, "max_task_batch_size": 1_000, "max_task_chain_length": 500,
                   "max_active_task_runs": 20_000},
}


class Plan(models.Model):
    """A subscription tier and its quotas. An empty quota means unlimited, shown as such."""

    code = models.SlugField("code", max_length=32, unique=True, help_text="FREE, STARTER, PROFESSIONAL, ENTERPRISE…")
    name = models.CharField("name", max_length=64)
    # The quota limits (api_calls_per_day, storage_bytes, max_users, max_models, max_concurrent_requests) are
    # declared by their kinds in tenants.quotas and added below the class.
    monthly_price_cents = models.PositiveIntegerField("monthly price (cents)", default=0)
    # Billing past the daily call quota (tenants.statements): none or 0 blocks there (429), a price admits
    # the calls and bills them per 1,000 (tenants.metering reads overage_allowed).
    overage_price_cents_per_1000 = models.PositiveIntegerField(
        "overage price per 1,000 calls (cents)", null=True, blank=True,
        help_text="Empty or 0: calls past the daily quota are refused. A price: they are admitted and billed "
                  "per 1,000.",
    )

    # What the plan's tenants may ask of the shared task cluster (enforced by tasks.limits and tasks.services).
    # blank=True with a default: a form that does not send these fields keeps the plan's values; one that
    # sends them empty is refused by clean().
    max_task_priority = models.PositiveSmallIntegerField(
        "highest task priority", choices=TASK_PRIORITY_CHOICES, default=1, blank=True,
        help_text="The most urgent priority its tenants may submit at; Critical is the operator's unless granted.",
    )
    max_task_batch_size = models.PositiveIntegerField(
        "task batch size", default=100, blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TASK_BATCH_SIZE)],
        help_text="Task runs in one batch submission.",
    )
    max_task_chain_length = models.PositiveIntegerField(
        "task chain length", default=20, blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TASK_CHAIN_LENGTH)],
        help_text="Task runs in the longest dependency chain (a run without dependencies is a chain of 1).",
    )
    max_active_task_runs = models.PositiveIntegerField(
        "unfinished task runs", null=True, blank=True, default=1000,
        help_text="Task runs waiting, queued or running at once. Empty means unlimited.",
    )

    class Meta:
        ordering = ["monthly_price_cents", "code"]
        constraints = [
            models.CheckConstraint(condition=models.Q(max_task_priority__lte=3), name="plan_max_task_priority_range",
                                   violation_error_message="Choose a task priority from Low to Critical."),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def overage_allowed(self) -> bool:
        """Calls past the daily quota are admitted and billed (a positive overage price), not refused."""
        return bool(self.overage_price_cents_per_1000)

    def clean(self):
        missing = {name: "Give a value." for name in ("max_task_priority", "max_task_batch_size",
                                                       "max_task_chain_length") if getattr(self, name) is None}
        if missing:
            raise ValidationError(missing)


for _name, _field in quotas.plan_field_definitions().items():
    Plan.add_to_class(_name, _field)


class Tenant(TenantMixin):
    """A Courtside customer: a team or a media company, with its own schema."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField("name", max_length=100, help_text="Legal or account name of the customer.")
    status = models.CharField(
        "status", max_length=16, choices=Status.choices, default=Status.ACTIVE,
        help_text="A suspended tenant's API refuses requests and its admin is read-only.",
    )
    plan = models.ForeignKey(
        Plan, verbose_name="plan", related_name="tenants", on_delete=models.PROTECT, null=True, blank=True,
        help_text="Quotas apply from the next request after a change. Empty only for the operator's public tenant.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)
    storage_bytes = models.PositiveBigIntegerField(
        "storage used (bytes)", default=0, help_text="Total size of the schema's relations, last measured."
    )
    storage_measured_at = models.DateTimeField("storage measured at", null=True, blank=True)

    # White-label branding, shown on the tenant's admin and API docs.
    display_name = models.CharField("display name", max_length=100, blank=True)
    logo = models.FileField("logo", upload_to="branding/", blank=True, help_text="PNG or JPEG.")
    primary_color = models.CharField(
        "primary colour", max_length=7, default="#1d428a", validators=[color_validator]
    )
    support_email = models.EmailField("support email", blank=True)

    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended"]), name="tenant_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(primary_color__regex=r"^#[0-9a-fA-F]{6}$"), name="tenant_primary_color_hex",
                violation_error_message="Use a hex colour like #552583.",
            ),
        ]
        # django-tenants refuses a new tenant whose schema name differs only in case from one that exists
        # (`schema_name__iexact`, at every sign-up): without this index a scan of every tenant (3.7 ms at 10,000).
        indexes = [models.Index(Upper("schema_name"), name="tenant_schema_name_upper")]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    def clean(self):
        super().clean()
        # No SVG: it can carry script, and logos are served from the tenant's own host.
        if self.logo and not self.logo.name.lower().endswith((".png", ".jpg", ".jpeg")):
            raise ValidationError({"logo": "The logo must be a PNG or JPEG file."})

    @property
    def is_public(self) -> bool:
        return self.schema_name == "public"

    @property
    def is_suspended(self) -> bool:
        return self.status == self.Status.SUSPENDED

    @property
    def brand_name(self) -> str:
        return self.display_name or self.name

    @property
    def is_over_storage(self) -> bool:
        limit = quotas.limit(self.plan, "storage") if self.plan_id else None
        return limit is not None and self.storage_bytes > limit


class Domain(DomainMixin):
    """A host name that serves one tenant (or the operator, for the public tenant)."""

    def __str__(self) -> str:
        return self.domain


class PlanChange(models.Model):
    """History of a tenant's plan: who moved it from which plan to which, and when."""

    tenant = models.ForeignKey(Tenant, related_name="plan_changes", on_delete=models.CASCADE)
    from_plan = models.ForeignKey(Plan, related_name="+", null=True, blank=True, on_delete=models.PROTECT)
    to_plan = models.ForeignKey(Plan, related_name="+", on_delete=models.PROTECT)
    changed_at = models.DateTimeField("changed at", auto_now_add=True)
    changed_by = models.CharField("changed by", max_length=150, blank=True)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.from_plan_id or '-'} -> {self.to_plan_id}"


class UsageDay(models.Model):
    """A tenant's usage on one UTC day: the billing ledger and the source of the admin charts."""

    # The error code of each refusal (tenants.metering) and the column that counts it.
    REFUSAL_COLUMNS = {"daily_quota_exceeded": "refused_daily_quota", "burst_limit_exceeded": "refused_burst",
                       "concurrency_limit_exceeded": "refused_concurrency"}

    tenant = models.ForeignKey(Tenant, related_name="usage_days", on_delete=models.CASCADE)
    date = models.DateField("date (UTC)")
    api_calls = models.PositiveBigIntegerField("API calls", default=0)
    peak_concurrency = models.PositiveIntegerField("peak concurrent requests", default=0)
    storage_bytes = models.PositiveBigIntegerField("storage (bytes)", default=0)
    users = models.PositiveIntegerField("users", default=0)
    saved_models = models.PositiveIntegerField("saved models", default=0)
    # The burst limit's counter (api.rate_limit_per_minute), kept on the day's row so that one
    # conditional upsert counts the call against both limits (public.courtside_admit_request).
    burst_window_start = models.DateTimeField("burst window start", null=True, blank=True, editable=False)
    burst_calls = models.PositiveIntegerField("calls in the burst window", default=0, db_default=0,
                                              editable=False)
    # Calls refused on the day, by which limit refused them (tenants.metering counts them; the dashboard
    # shows them). A refused call is not one of `api_calls`.
    refused_daily_quota = models.PositiveIntegerField("refused: daily quota", default=0, db_default=0)
    refused_burst = models.PositiveIntegerField("refused: burst limit", default=0, db_default=0)
    refused_concurrency = models.PositiveIntegerField("refused: concurrency", default=0, db_default=0)
    # The surface of the admitted calls: `mcp_calls` of `api_calls` came through the MCP server, the rest
    # through the REST API (and its task runs). Counted by the same admission upsert (tenants.0010).
    mcp_calls = models.PositiveBigIntegerField("of which through MCP", default=0, db_default=0)

    class Meta:
        ordering = ["-date"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "date"], name="usage_one_row_per_tenant_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id} on {self.date}"

    @property
    def rest_calls(self) -> int:
        return max(0, self.api_calls - self.mcp_calls)


class RequestLease(models.Model):
    """An API request in flight. Leases expire on their own, so a killed worker cannot lock a tenant out."""

    token = models.UUIDField(primary_key=True, default=uuid.uuid4)
    tenant = models.ForeignKey(Tenant, related_name="+", on_delete=models.CASCADE)
    expires_at = models.DateTimeField("expires at")

    class Meta:
        indexes = [models.Index(fields=["tenant", "expires_at"], name="lease_tenant_expiry")]

    def __str__(self) -> str:
        return f"lease {self.token} until {self.expires_at}"


class AnonymousWindow(models.Model):
    """Anonymous requests of one client address on one host in the current UTC minute (never a tenant's quota).

    One row per (host's tenant, address), reused minute after minute; UNLOGGED (tenants.0006)
    like the leases: a crash forgets at most a minute of anonymous counts.
    """

    tenant = models.ForeignKey(Tenant, related_name="+", on_delete=models.CASCADE)
    address = models.CharField("client address", max_length=64, help_text="IPv4 address, or IPv6 /64 network.")
    window_start = models.DateTimeField("window start")
    calls = models.PositiveIntegerField("calls", default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "address"], name="anonymous_one_window_per_address"),
        ]

    def __str__(self) -> str:
        return f"{self.address} on {self.tenant_id}: {self.calls} since {self.window_start}"


class ApiKey(models.Model):
    """A per-tenant API key. Only its prefix and a SHA-256 hash of the secret are stored."""

    class Scope(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"

    tenant = models.ForeignKey(Tenant, related_name="api_keys", on_delete=models.CASCADE)
    name = models.CharField("name", max_length=100, help_text="What the key is for.")
    prefix = models.CharField("prefix", max_length=16, unique=True, editable=False)
    secret_hash = models.CharField("secret hash", max_length=64, editable=False)
    scope = models.CharField("scope", max_length=8, choices=Scope.choices, default=Scope.READ)
    created_at = models.DateTimeField("created", auto_now_add=True)
    created_by = models.CharField("created by", max_length=150, blank=True)
    last_used_at = models.DateTimeField("last used", null=True, blank=True)
    revoked_at = models.DateTimeField("revoked", null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class PooledSchema(models.Model):
    """A migrated schema holding the schema seeds (the NBA reference data), to become a tenant's by a rename."""

    schema_name = models.CharField("schema", max_length=63, unique=True)
    fingerprint = models.CharField(
        "migrations fingerprint", max_length=64, help_text="Hash of the tenant migrations it was built with."
    )
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.schema_name
