"""The migration ledger: what ran in which schema, with the file's checksum, kept even when undone."""

from django.db import models


class MigrationRecord(models.Model):
    """One migration applied to one schema (public or a tenant's), as Flyway keeps its history table."""

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        FAILED = "failed", "Failed"
        UNDONE = "undone", "Undone"

    schema_name = models.CharField("schema", max_length=63, db_index=True,
                                   help_text="PostgreSQL schema the migration ran in.")
    app_label = models.CharField("app", max_length=100, help_text="Django app of the migration.")
    name = models.CharField("migration", max_length=255, help_text="Migration name, e.g. 0002_add_height.")
    checksum = models.CharField("SHA-256", max_length=64, blank=True,
                                help_text="SHA-256 of the migration file when it ran; empty if unreadable.")
    applied_at = models.DateTimeField("applied at", db_index=True, help_text="When the migration started.")
    applied_by = models.CharField("applied by", max_length=150, blank=True,
                                  help_text="Operator or OS user who ran it.")
    duration_ms = models.PositiveIntegerField("duration (ms)", default=0, help_text="Wall time of the migration.")
    outcome = models.CharField("outcome", max_length=16, choices=Outcome.choices, default=Outcome.APPLIED,
                               help_text="Applied, failed (the schema kept its old state) or undone (reversed later).")
    error = models.TextField("error", blank=True, help_text="Error of a failed migration, secrets masked.")
    undone_at = models.DateTimeField("undone at", null=True, blank=True,
                                     help_text="When the migration was reversed; the row stays as history.")
    undone_by = models.CharField("undone by", max_length=150, blank=True, help_text="Who reversed it.")
    rollout = models.ForeignKey("Rollout", verbose_name="rollout", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="records", help_text="Rollout that ran it, if any.")

    class Meta:
        verbose_name = "migration record"
        ordering = ["-applied_at", "-id"]
        indexes = [models.Index(fields=["schema_name", "app_label", "name"], name="schemas_record_key")]
        constraints = [
            models.CheckConstraint(condition=models.Q(outcome__in=["applied", "failed", "undone"]),
                                   name="schemas_record_outcome_valid"),
            models.CheckConstraint(condition=models.Q(outcome="undone") | models.Q(undone_at__isnull=True),
                                   name="schemas_record_undone_only_when_undone"),
            # A migration is applied to a schema at most once until it is undone: two recorders
            # (two processes, a retried rollout) cannot make the ledger claim it twice.
            models.UniqueConstraint(fields=["schema_name", "app_label", "name"],
                                    condition=models.Q(outcome="applied"), name="schemas_record_applied_once"),
        ]

    def __str__(self) -> str:
        return f"{self.schema_name}: {self.app_label}.{self.name} ({self.outcome})"


class LedgerState(models.Model):
    """One row per schema: how many applied ledger rows it has and a digest of them, kept by PostgreSQL itself.

    Written only by the triggers of migration 0004 on the ledger table (every INSERT, UPDATE, DELETE and TRUNCATE,
    raw SQL included), in the statement that changes the ledger: never by Django code. The digest is two sums,
    modulo 2**64, of 64-bit halves of the MD5 of each applied row's (app, name, checksum), so it can be updated
    by adding and subtracting rows. Two schemas with equal (rows, h1, h2) hold the same applied migrations with
    the same checksums (up to a 128-bit collision): the migration summary reads one schema's ledger rows per
    distinct state, not every schema's (schemas.selectors.ledger_summary).
    """

    schema_name = models.CharField("schema", max_length=63, primary_key=True)
    rows = models.IntegerField("applied rows", default=0)
    h1 = models.DecimalField("digest (high)", max_digits=20, decimal_places=0, default=0)
    h2 = models.DecimalField("digest (low)", max_digits=20, decimal_places=0, default=0)

    class Meta:
        verbose_name = "ledger state"
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"{self.schema_name}: {self.rows} applied"


class AppliedState(models.Model):
    """One row per django_migrations table (by its oid, so a renamed schema keeps it): its rows and their digest.

    Kept by triggers on each schema's django_migrations (migration 0005's `schemas_applied_state_apply`), in the
    transaction that changes the table; a row exists only for a table that `schemas_applied_state_adopt` took
    over (under a lock that keeps writers out while it counts), and the triggers never create one. The digest is
    that of LedgerState over (app, name). The no-op migration check reads these 10,000 rows and one catalog query
    instead of opening 10,000 tables; a table without a row, or whose triggers are missing or disabled, is read
    directly as before (schemas.selectors.applied_fingerprints).
    """

    relid = models.BigIntegerField("table oid", primary_key=True)
    rows = models.IntegerField("rows", default=0)
    h1 = models.DecimalField("digest (high)", max_digits=20, decimal_places=0, default=0)
    h2 = models.DecimalField("digest (low)", max_digits=20, decimal_places=0, default=0)

    class Meta:
        verbose_name = "applied-migrations state"
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"table {self.relid}: {self.rows} rows"


class Rollout(models.Model):
    """One run of `rollout` over many schemas: its targets and each schema's result, so it can resume."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        PARTIAL = "partial", "Partial (canary or interrupted)"

    targets = models.JSONField("targets", default=list, blank=True,
                               help_text="[[app, migration], ...] to migrate to; empty means every app's latest.")
    backwards = models.BooleanField("rollback", default=False, help_text="Reverses to the targets.")
    status = models.CharField("status", max_length=16, choices=Status.choices, default=Status.RUNNING,
                              help_text="Overall state of the run.")
    started_at = models.DateTimeField("started at", auto_now_add=True)
    finished_at = models.DateTimeField("finished at", null=True, blank=True)
    started_by = models.CharField("started by", max_length=150, blank=True, help_text="Operator or OS user.")
    total = models.PositiveIntegerField("schemas", default=0, help_text="Schemas in scope.")
    done = models.PositiveIntegerField("done", default=0, help_text="Schemas finished, successfully or not.")
    results = models.JSONField("results", default=dict, blank=True,
                               help_text="{schema: {status: ok|failed|pending, error, applied}} per schema.")
    phase = models.JSONField("phase", default=dict, blank=True,
                             help_text="In a phased rollout: {kind: schema|data, migration, type, batch, batches, "
                                       "goal, scope, canary}; empty for a plain rollout.")

    class Meta:
        verbose_name = "rollout"
        ordering = ["-started_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=["running", "succeeded", "failed", "partial"]),
                                   name="schemas_rollout_status_valid"),
        ]

    def __str__(self) -> str:
        return f"Rollout #{self.pk} ({self.status}, {self.done}/{self.total})"

    @property
    def failed_schemas(self) -> list[str]:
        return sorted(s for s, r in self.results.items() if r.get("status") == "failed")
