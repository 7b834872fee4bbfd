"""Configuration entries (operator and tenant layers), their schemas and their history.

Everything lives in the public schema: configuration is a shared app, and a
tenant's override is a row with a tenant foreign key, so one query reads any
tenant's view and the operator sees every layer in one place.
"""

from django.core.validators import RegexValidator
from django.db import models

from configuration import sealing

KEY_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
key_validator = RegexValidator(
    KEY_PATTERN, "Use dotted lowercase names, like cache.ttl_seconds (letters, digits, underscores)."
)


class SealedJSONField(models.JSONField):
    """A JSONField whose secret values are stored encrypted; every reader gets the plain value.

    The services decide what is secret: they name the field in the instance's
    `sealed_fields` before saving (the attribute keeps the plain value, so
    signal receivers such as the audit log see it, to mask), or pass
    `Sealed(value)` to update()/bulk_create(). Reads (the ORM, values(),
    values_list()) decrypt the envelope, and a database dump shows
    `{"$fernet": "gAAAA..."}`.
    """

    def from_db_value(self, value, expression, connection):
        return sealing.unseal(super().from_db_value(value, expression, connection))

    def pre_save(self, model_instance, add):
        value = super().pre_save(model_instance, add)
        if self.attname in model_instance.sealed_fields and value not in (None, ""):
            return sealing.Sealed(value)
        return value

    def get_db_prep_value(self, value, connection, prepared=False):
        if isinstance(value, sealing.Sealed):
            value = sealing.seal(value.value)
        return super().get_db_prep_value(value, connection, prepared)

    def validate(self, value, model_instance):
        super().validate(value.value if isinstance(value, sealing.Sealed) else value, model_instance)


class ConfigSchema(models.Model):
    """A JSON Schema for one key or a whole namespace, and what tenants may do with it."""

    key = models.CharField(
        "key or namespace", max_length=200, unique=True, validators=[key_validator],
        help_text="A dotted key (cache.ttl_seconds) or a namespace (cache) whose value the schema describes.",
    )
    schema = models.JSONField(
        "JSON Schema", default=dict, blank=True,
        help_text="A JSON Schema (draft 2020-12) the effective value at this key must satisfy.",
    )
    secret = models.BooleanField(
        "secret", default=False,
        help_text="Mask values at and under this key in the admin, the API, exports and logs.",
    )
    tenant_editable = models.BooleanField(
        "tenant editable", default=False,
        help_text="Tenant admins may override keys at and under this one for their own tenant.",
    )
    description = models.CharField("description", max_length=300, blank=True, help_text="What the key controls.")
    updated_at = models.DateTimeField("updated", auto_now=True)

    class Meta:
        ordering = ["key"]
        verbose_name = "key schema"
        constraints = [
            models.CheckConstraint(condition=models.Q(key__regex=KEY_PATTERN), name="config_schema_key_format"),
        ]

    def __str__(self) -> str:
        return self.key


class ConfigEntry(models.Model):
    """A value set at runtime: the database layer (no tenant) or one tenant's override."""

    key = models.CharField(
        "key", max_length=200, validators=[key_validator],
        help_text="Dotted key, like cache.ttl_seconds; a dict value sets a whole namespace (deep-merged).",
    )
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name="tenant", null=True, blank=True, on_delete=models.CASCADE,
        related_name="config_entries",
        help_text="Empty for the database layer (every tenant); set for one tenant's override.",
    )
    value = SealedJSONField("value", null=True, blank=True, help_text="Any JSON value (encrypted when secret).")
    secret = models.BooleanField(
        "secret", default=False,
        help_text="Mask this value everywhere; keys named like password, token, secret or key are always masked.",
    )
    version = models.PositiveIntegerField("version", default=1, help_text="Raised by one on every change.")
    updated_at = models.DateTimeField("updated", auto_now=True)
    updated_by = models.CharField("updated by", max_length=150, blank=True, help_text="Who made the last change.")

    class Meta:
        ordering = ["key", "tenant_id"]
        verbose_name = "configuration entry"
        verbose_name_plural = "configuration entries"
        constraints = [
            # One row per key and layer; NULLS NOT DISTINCT makes the operator layer unique too.
            models.UniqueConstraint(fields=["key", "tenant"], name="config_entry_key_tenant_unique",
                                    nulls_distinct=False),
            models.CheckConstraint(condition=models.Q(key__regex=KEY_PATTERN), name="config_entry_key_format"),
        ]

    # Fields the services ask to store encrypted on the next save (SealedJSONField.pre_save).
    sealed_fields: frozenset = frozenset()

    def __str__(self) -> str:
        return f"{self.key} ({self.tenant.schema_name})" if self.tenant_id else self.key

    @property
    def layer(self) -> str:
        return "tenant" if self.tenant_id else "database"


class TenantOverride(ConfigEntry):
    """A tenant's own overrides, as its admin sees them."""

    class Meta:
        proxy = True
        verbose_name = "setting"
        verbose_name_plural = "settings"


class ConfigChange(models.Model):
    """One change of one entry: old and new value, who, when, from where. Rollback reads these."""

    class Action(models.TextChoices):
        SET = "set", "Set"
        DELETE = "delete", "Delete"
        ROLLBACK = "rollback", "Rollback"
        IMPORT = "import", "Import"

    key = models.CharField("key", max_length=200, db_index=True, help_text="The entry's dotted key.")
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name="tenant", null=True, blank=True, on_delete=models.CASCADE,
        related_name="config_changes", help_text="Empty for the database layer.",
    )
    version = models.PositiveIntegerField("version", help_text="The entry's version after this change (0: deleted).")
    action = models.CharField("action", max_length=16, choices=Action.choices, default=Action.SET)
    old_value = SealedJSONField("old value", null=True, blank=True,
                                help_text="Value before (null: no entry); encrypted when secret.")
    new_value = SealedJSONField("new value", null=True, blank=True,
                                help_text="Value after (null: deleted); encrypted when secret.")
    existed_before = models.BooleanField("existed before", default=True, help_text="An entry existed before.")
    exists_after = models.BooleanField("exists after", default=True, help_text="An entry exists after.")
    secret = models.BooleanField("secret", default=False, help_text="The value was secret when changed.")
    changed_by = models.CharField("changed by", max_length=150, blank=True, help_text="User or process.")
    source = models.CharField(
        "source", max_length=32, help_text="Where the change came from: admin, tenant-admin, api, import, code."
    )
    changed_at = models.DateTimeField("changed", auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-changed_at", "-id"]
        verbose_name = "configuration change"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action__in=["set", "delete", "rollback", "import"]), name="config_change_action"
            ),
        ]

    sealed_fields: frozenset = frozenset()  # see ConfigEntry.sealed_fields

    def __str__(self) -> str:
        scope = f" ({self.tenant.schema_name})" if self.tenant_id else ""
        return f"{self.key}{scope} v{self.version} {self.action}"


class ExperimentExposure(models.Model):
    """How many evaluations of an experiment gave a tenant a variant on one day (written in batches)."""

    experiment = models.CharField("experiment", max_length=200, help_text="The name under experiments.")
    variant = models.CharField("variant", max_length=100)
    tenant = models.ForeignKey("tenants.Tenant", verbose_name="tenant", on_delete=models.CASCADE,
                               related_name="experiment_exposures")
    day = models.DateField("day (UTC)")
    count = models.PositiveBigIntegerField("exposures", default=0)

    class Meta:
        ordering = ["experiment", "variant", "-day"]
        verbose_name = "experiment"
        verbose_name_plural = "experiments"
        constraints = [
            # The batched upsert of configuration/experiments.py adds to the day's row of this key.
            models.UniqueConstraint(fields=["experiment", "variant", "tenant", "day"], name="config_exposure_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.experiment}/{self.variant} {self.day}: {self.count}"
