"""Tenants (customers) and the domains that serve them."""

from django.core.validators import RegexValidator
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

RESERVED_SCHEMA_NAMES = frozenset(
    {"public", "information_schema", "pg_catalog", "pg_toast", "template", "www", "admin", "api"}
)
schema_name_validator = RegexValidator(
    r"^[a-z][a-z0-9_]{1,47}$",
    "Use 2 to 48 lowercase letters, digits or underscores, starting with a letter.",
)


class Tenant(TenantMixin):
    """A Courtside customer: a team or a media company, with its own schema."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    name = models.CharField("name", max_length=100, help_text="Display name of the customer.")
    status = models.CharField(
        "status", max_length=16, choices=Status.choices, default=Status.ACTIVE,
        help_text="A suspended tenant's API refuses requests and its admin is read-only.",
    )
    created_at = models.DateTimeField("created", auto_now_add=True)

    auto_create_schema = True
    auto_drop_schema = True

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "suspended"]), name="tenant_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.schema_name})"

    @property
    def is_public(self) -> bool:
        return self.schema_name == "public"


class Domain(DomainMixin):
    """A host name that serves one tenant (or the operator, for the public tenant)."""

    def __str__(self) -> str:
        return self.domain
