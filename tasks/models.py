"""Task runs on the django-q2 cluster, in the public schema: the operator sees all, a tenant its own."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


class Priority(models.IntegerChoices):
    """Strict dispatch order: a higher value always leaves the queue first."""

    LOW = 0, "Low"
    NORMAL = 1, "Normal"
    HIGH = 2, "High"
    CRITICAL = 3, "Critical"


def parse_priority(value) -> int | None:
    """The one reading of a priority from outside: a name (any case) or 0-3 (a number or its digits).

    None stays None (the task's default). Anything else raises ValueError naming the choices; the
    submission services, the API's field and filter, the admin and the brokers' package hints all read
    priorities through here.
    """
    if value is None:
        return None
    if isinstance(value, str):
        key = value.strip().upper()
        if key in Priority.names:
            return Priority[key].value
        if key.isdigit():
            value = int(key)
    if isinstance(value, int) and not isinstance(value, bool) and value in Priority.values:
        return int(value)
    raise ValueError(f"Priority must be one of {', '.join(Priority.names)}.")


class Status(models.TextChoices):
    WAITING = "waiting", "Waiting for dependencies"
    QUEUED = "queued", "Queued"
    # The ORM broker's dequeue claimed the run (attempt counted, lease set) and its package waits in a
    # worker's prefetch: still queued for anyone reading it; it becomes RUNNING when its function starts.
    CLAIMED = "claimed", "Queued (delivered to a worker)"
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Retrying"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)
# Holding an attempt: a lease that, once run out, means the worker died and the attempt was lost.
LEASED = (Status.CLAIMED, Status.RUNNING)
# What the admin, the API and the commands show: a claimed run has not started, it reads as queued.
PUBLIC_STATUSES = [value for value in Status.values if value != Status.CLAIMED]
PUBLIC_STATUS_CHOICES = [(value, label) for value, label in Status.choices if value != Status.CLAIMED]


def public_status(status: str) -> str:
    return Status.QUEUED.value if status == Status.CLAIMED else status


def statuses_shown_as(status: str) -> list[str]:
    """The stored statuses a filter on a shown status means (queued includes the claimed runs)."""
    return [Status.QUEUED, Status.CLAIMED] if status == Status.QUEUED else [status]


class TaskRunQuerySet(models.QuerySet):
    def for_tenant(self, tenant):
        """A tenant's runs only; the public tenant (operator) sees every run."""
        if tenant is None or tenant.schema_name == "public":
            return self
        return self.filter(tenant=tenant)

    def active(self):
        return self.exclude(status__in=TERMINAL)


class TaskRun(models.Model):
    """One submitted task: what to run, for whom, how urgently, and what became of it."""

    id = models.UUIDField("id", primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField("task", max_length=100, help_text="Registered task name.")
    arguments = models.JSONField("arguments", default=dict, blank=True, help_text="Validated keyword arguments.")
    args_summary = models.CharField("arguments (summary)", max_length=200, blank=True)
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name="tenant", related_name="task_runs", null=True, blank=True,
        on_delete=models.SET_NULL, help_text="Empty for operator work, run in the public schema.",
        db_index=False,  # taskrun_tenant_newest covers it
    )
    # Kept beside the FK on purpose: a run whose tenant was deleted must fail
    # loudly by name, never silently fall back to public.
    schema_name = models.CharField(
        "schema", max_length=63, default="public", help_text="Schema the task runs in."
    )
    priority = models.PositiveSmallIntegerField(
        "priority", choices=Priority.choices, default=Priority.NORMAL
    )
    status = models.CharField("status", max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField("attempts", default=0, help_text="Attempts started so far.")
    lost_attempts = models.PositiveIntegerField(
        "lost attempts", default=0, help_text="Attempts whose worker died (SIGKILL, OOM, hard timeout)."
    )
    max_retries = models.PositiveSmallIntegerField("max retries", default=0)
    backoff_base = models.FloatField("backoff base (s)", default=2.0, help_text="Delay before the first retry.")
    backoff_cap = models.FloatField("backoff cap (s)", default=300.0, help_text="Longest delay between attempts.")
    backoff_jitter = models.FloatField(
        "backoff jitter", default=0.25, help_text="Each delay is shortened by a random fraction up to this."
    )
    timeout = models.PositiveIntegerField("timeout (s)", default=300)
    progress = models.FloatField("progress", default=0.0, help_text="0 to 1, reported by the task.")
    progress_message = models.CharField("progress message", max_length=200, blank=True)
    cancel_requested = models.BooleanField(
        "cancel requested", default=False, help_text="A running task stops at its next progress report."
    )
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, related_name="dependents", blank=True, verbose_name="depends on"
    )
    depth = models.PositiveIntegerField(
        "chain length", default=1,
        help_text="Runs in the longest dependency chain ending here: 1 without dependencies, else one more than "
                  "its deepest dependency. Capped per plan.",
    )
    run_if_dependency_fails = models.BooleanField(
        "run if a dependency fails", default=False,
        help_text="Otherwise a failed or cancelled dependency cancels this run.",
    )
    run_at = models.DateTimeField("run at", null=True, blank=True, help_text="Not before this time.")
    next_attempt_at = models.DateTimeField("next attempt at", null=True, blank=True)
    lease_until = models.DateTimeField(
        "lease until", null=True, blank=True, help_text="A running attempt past this is taken as lost."
    )
    worker_pid = models.PositiveIntegerField("worker pid", null=True, blank=True)
    result = models.JSONField("result", null=True, blank=True)
    error = models.TextField("error", blank=True)
    traceback = models.TextField("traceback", blank=True)
    submitted_by = models.CharField("submitted by", max_length=150, blank=True)
    schedule = models.ForeignKey(
        "tasks.TaskSchedule", verbose_name="schedule", related_name="runs", null=True, blank=True,
        on_delete=models.SET_NULL, db_index=False,  # taskrun_schedule (partial)
    )
    retry_of = models.ForeignKey(
        "self", verbose_name="retry of", related_name="retried_as", null=True, blank=True,
        on_delete=models.SET_NULL, db_index=False,  # taskrun_retry_of (partial)
    )
    created_at = models.DateTimeField("submitted", auto_now_add=True)
    started_at = models.DateTimeField("started", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    updated_at = models.DateTimeField("updated", auto_now=True)

    objects = TaskRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "task run"
        constraints = [
            models.CheckConstraint(condition=Q(progress__gte=0) & Q(progress__lte=1), name="taskrun_progress_range"),
            models.CheckConstraint(condition=Q(priority__lte=3), name="taskrun_priority_range"),
            models.CheckConstraint(condition=Q(timeout__gte=1), name="taskrun_timeout_positive"),
            models.CheckConstraint(
                condition=Q(backoff_base__gte=0) & Q(backoff_cap__gte=0) & Q(backoff_jitter__gte=0)
                & Q(backoff_jitter__lte=1),
                name="taskrun_backoff_valid",
            ),
        ]
        # Few indexes, none on a column that changes after the insert (status, progress, times): a state
        # change can then be a HOT update, which writes no index entry. A run changes state two or three
        # times; with the 13 indexes Django gave it at first, each change wrote 13 index entries.
        # Lists are read newest first, per tenant or for all; fillfactor (0002) leaves room for HOT.
        indexes = [
            models.Index(fields=["-created_at"], name="taskrun_newest"),
            models.Index(fields=["tenant", "-created_at"], name="taskrun_tenant_newest"),
            models.Index(fields=["schedule"], name="taskrun_schedule", condition=Q(schedule__isnull=False)),
            models.Index(fields=["retry_of"], name="taskrun_retry_of", condition=Q(retry_of__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.get_status_display()}]"

    def clean(self):
        if self.backoff_cap < self.backoff_base:
            raise ValidationError({"backoff_cap": "The cap must be at least the base delay."})

    @property
    def is_finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def public_status(self) -> str:
        return public_status(self.status)

    def get_public_status_display(self) -> str:
        return Status(self.public_status).label

    @property
    def idempotency_key(self) -> str:
        """Same for every attempt of this run: side effects keyed by it happen once."""
        return f"taskrun:{self.pk}"


class TenantRunCount(models.Model):
    """Task runs of a tenant ever submitted, and ever finished: the unfinished ones are the difference.

    Kept by triggers on the run table (migration tasks 0007), which also refuse a new run past the plan's
    `max_active_task_runs`, whatever path inserts it. Two rows per tenant, so submissions (which lock the
    `submitted` row until they commit) and the cluster recording outcomes (the `finished` row) never wait
    on each other.
    """

    class Side(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        FINISHED = "finished", "Finished"

    tenant = models.ForeignKey("tenants.Tenant", verbose_name="tenant", related_name="+", on_delete=models.CASCADE,
                               db_index=False)  # the unique constraint's index serves it
    side = models.CharField("side", max_length=16, choices=Side.choices)
    runs = models.BigIntegerField("runs", default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "side"], name="tenantruncount_unique_side")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.side}: {self.runs}"


class TaskAttempt(models.Model):
    """One attempt at a run, kept so retries, timeouts and lost workers can be read afterwards."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        TIMED_OUT = "timed_out", "Timed out"
        CANCELLED = "cancelled", "Cancelled"
        LOST = "lost", "Lost (worker died)"

    run = models.ForeignKey(
        TaskRun, verbose_name="run", related_name="attempt_log", on_delete=models.CASCADE,
        db_index=False,  # taskattempt_unique_number (run, number) serves lookups by run
    )
    number = models.PositiveIntegerField("attempt")
    outcome = models.CharField("outcome", max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    worker_pid = models.PositiveIntegerField("worker pid", null=True, blank=True)
    schema_name = models.CharField("schema at start", max_length=63, blank=True)
    started_at = models.DateTimeField("started")
    finished_at = models.DateTimeField("finished", null=True, blank=True)
    error = models.TextField("error", blank=True)
    retry_delay = models.FloatField(
        "retry delay (s)", null=True, blank=True, help_text="Backoff chosen before the next attempt."
    )

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="taskattempt_unique_number")]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.run_id}: {self.outcome}"


class TaskEffect(models.Model):
    """Idempotency ledger: a side effect recorded under a key happens at most once, whatever retries."""

    key = models.CharField("idempotency key", max_length=200, unique=True)
    run = models.ForeignKey(
        TaskRun, verbose_name="run", related_name="effects", null=True, blank=True, on_delete=models.SET_NULL
    )
    detail = models.JSONField("detail", default=dict, blank=True)
    created_at = models.DateTimeField("recorded", auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.key


class TaskSchedule(models.Model):
    """Recurring work (cron or interval), operator-wide or for one tenant; fired by django-q2's scheduler.

    A system schedule is declared in code (tasks.registry.system_job) and kept in step with it after every
    migrate; the others are made on the schedules page (the operator's, and each tenant's own).
    """

    name = models.CharField("name", max_length=100, unique=True)
    task_name = models.CharField("task", max_length=100, help_text="Registered task name.")
    arguments = models.JSONField("arguments", default=dict, blank=True)
    tenant = models.ForeignKey(
        "tenants.Tenant", verbose_name="tenant", related_name="task_schedules", null=True, blank=True,
        on_delete=models.CASCADE, help_text="Empty for operator work.",
    )
    priority = models.PositiveSmallIntegerField("priority", choices=Priority.choices, default=Priority.NORMAL)
    cron = models.CharField("cron", max_length=100, blank=True, help_text="Like '0 4 * * *' (UTC).")
    interval_minutes = models.PositiveIntegerField("every (minutes)", null=True, blank=True)
    enabled = models.BooleanField("enabled", default=True)
    system = models.BooleanField(
        "system", default=False, editable=False,
        help_text="Declared in code beside its task (tasks.registry.system_job): its timing is not edited here.",
    )
    q_schedule = models.OneToOneField(
        "django_q.Schedule", verbose_name="django-q2 schedule", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="courtside_schedule",
    )
    created_by = models.CharField("created by", max_length=150, blank=True)
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(cron="") & Q(interval_minutes__isnull=False))
                | (~Q(cron="") & Q(interval_minutes__isnull=True)),
                name="taskschedule_cron_xor_interval",
                violation_error_message="Give either a cron expression or an interval, not both.",
            ),
            models.CheckConstraint(
                condition=Q(interval_minutes__isnull=True) | Q(interval_minutes__gte=1),
                name="taskschedule_interval_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class QueueMessage(models.Model):
    """A package on the priority ORM broker: by priority, then by turns of tenant, then by age.

    `available_at` doubles as the delivery's lock. Within the highest priority that has due packages,
    the dequeue takes the oldest package of the tenant after the one it served last (tasks.broker).
    """

    queue = models.CharField("queue", max_length=100)
    priority = models.PositiveSmallIntegerField("priority", choices=Priority.choices, default=Priority.NORMAL)
    payload = models.TextField("payload")
    available_at = models.DateTimeField("available at", help_text="Delayed until, or locked until while delivered.")
    lease_seconds = models.PositiveIntegerField(
        "lease (s)", default=360, help_text="Redelivered this long after a delivery that was not acknowledged."
    )
    deliveries = models.PositiveIntegerField("deliveries", default=0)
    # The TaskRun a `tasks.runner.execute` package runs: the dequeue claims it in the same statement.
    # No foreign key: a package may outlive its run (deleted by the operator), and the claim skips it then.
    run_id = models.UUIDField("task run", null=True, blank=True)
    # Whose turn it is: the tenant's id, 0 for operator work and plain django-q2 packages. No foreign key:
    # only the dispatch order reads it.
    tenant_key = models.BigIntegerField("tenant", default=0)
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        ordering = ["-priority", "id"]
        indexes = [
            # The top priority (read backwards), then each tenant's packages oldest first.
            models.Index(fields=["queue", "priority", "tenant_key", "id"], name="queuemessage_fair_dispatch"),
        ]

    def __str__(self) -> str:
        return f"{self.queue} #{self.pk} ({self.get_priority_display()})"


class WorkerProcess(models.Model):
    """One cluster worker process, as its own heartbeats tell (tasks.engine.workers)."""

    class End(models.TextChoices):
        RECYCLED = "recycled", "Recycled (its quota of tasks done)"
        STOPPED = "stopped", "Stopped with its cluster"
        LOST = "lost", "Lost (stopped heartbeating)"

    host = models.CharField("host", max_length=255)
    pid = models.PositiveIntegerField("pid")
    cluster = models.CharField("cluster", max_length=100, help_text="The queue it serves.")
    name = models.CharField("process", max_length=100, blank=True)
    started_at = models.DateTimeField("started")
    last_heartbeat_at = models.DateTimeField("last heartbeat")
    current_run = models.ForeignKey(
        TaskRun, verbose_name="current run", null=True, blank=True, on_delete=models.DO_NOTHING,
        db_constraint=False, related_name="+",  # a heartbeat names a run; it never waits on the run's row
    )
    current_since = models.DateTimeField("current run since", null=True, blank=True)
    tasks_done = models.PositiveIntegerField("tasks done", default=0)
    ended_at = models.DateTimeField("ended", null=True, blank=True)
    end = models.CharField("end", max_length=16, choices=End.choices, blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = "worker"
        indexes = [models.Index(fields=["last_heartbeat_at"], name="workerprocess_alive",
                                condition=Q(ended_at__isnull=True))]

    def __str__(self) -> str:
        return f"worker {self.pid} on {self.host}"
