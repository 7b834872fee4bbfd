"""Shapes of the task API: submissions in, runs out."""

from rest_framework import serializers

from tasks import selectors
from tasks.models import PUBLIC_STATUS_CHOICES, Priority, TaskAttempt, TaskRun, WorkerProcess, parse_priority
from tenants import media
from tenants.models import MAX_TASK_BATCH_SIZE


class PriorityField(serializers.ChoiceField):
    """Accepts what tasks.models.parse_priority reads (a name in any case, or 0-3); shows the name."""

    def __init__(self, **kwargs):
        super().__init__(choices=Priority.names, **kwargs)

    def to_internal_value(self, data):
        try:
            priority = parse_priority(data)
        except ValueError:
            priority = None
        if priority is None:
            self.fail("invalid_choice", input=data)
        return priority

    def to_representation(self, value):
        return Priority(value).name


class SubmitSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, help_text="A task name from GET tasks/catalogue/.")
    args = serializers.JSONField(required=False, default=dict, help_text="Keyword arguments, a JSON object.")
    priority = PriorityField(required=False, allow_null=True, default=None)
    run_at = serializers.DateTimeField(required=False, allow_null=True, default=None)
    countdown = serializers.FloatField(required=False, allow_null=True, default=None,
                                       help_text="Seconds from now; not negative.")
    depends_on = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    run_if_dependency_fails = serializers.BooleanField(required=False, default=False)
    max_retries = serializers.IntegerField(required=False, allow_null=True, default=None)
    timeout = serializers.IntegerField(required=False, allow_null=True, default=None)
    backoff_base = serializers.FloatField(required=False, allow_null=True, default=None)
    backoff_cap = serializers.FloatField(required=False, allow_null=True, default=None)


class OperatorSubmitSerializer(SubmitSerializer):
    tenant = serializers.CharField(required=False, allow_blank=True, default="",
                                   help_text="Schema name of the tenant to run for; empty for operator work.")


class BatchItemSerializer(SubmitSerializer):
    key = serializers.CharField(max_length=100, help_text="Names this task for depends_on inside the batch.")


class BatchSerializer(serializers.Serializer):
    tasks = serializers.ListField(child=serializers.DictField(), allow_empty=False, max_length=MAX_TASK_BATCH_SIZE,
                                  help_text="At most the plan's task batch size (the operator's: configuration "
                                            "tasks.operator_limits).")


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = TaskAttempt
        fields = ["number", "outcome", "started_at", "finished_at", "error", "retry_delay", "schema_name"]


class TaskRunSerializer(serializers.ModelSerializer):
    priority = PriorityField(read_only=True)
    status = serializers.ChoiceField(source="public_status", choices=PUBLIC_STATUS_CHOICES, read_only=True,
                                     help_text="A run delivered to a worker whose task has not started is queued.")
    tenant = serializers.CharField(source="schema_name", read_only=True)
    depends_on = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField(
        help_text="A short-lived signed link to the file the result names (a report), on its tenant's host.")

    class Meta:
        model = TaskRun
        fields = [
            "id", "name", "args_summary", "tenant", "priority", "status", "attempts", "lost_attempts", "max_retries",
            "progress", "progress_message", "cancel_requested", "depends_on", "run_if_dependency_fails", "run_at",
            "next_attempt_at", "timeout", "result", "error", "submitted_by", "created_at", "started_at",
            "finished_at", "download_url",
        ]

    def get_depends_on(self, run) -> list[str]:
        # .all(): read from prefetch_related("depends_on") when the view fetched the runs so (one query for a
        # list, not one per run).
        return sorted(str(dependency.pk) for dependency in run.depends_on.all())

    def get_download_url(self, run) -> str | None:
        return media.result_link(run.result, schema_name=run.schema_name, request=self.context.get("request"))


class TaskRunDetailSerializer(TaskRunSerializer):
    attempts_log = AttemptSerializer(source="attempt_log", many=True, read_only=True)

    class Meta(TaskRunSerializer.Meta):
        fields = [*TaskRunSerializer.Meta.fields, "traceback", "attempts_log"]


class WorkerSerializer(serializers.ModelSerializer):
    """One cluster worker process as its heartbeats tell (the admin's Task queue › Workers)."""

    state = serializers.SerializerMethodField(help_text="Running a task, Idle, Not heartbeating for N s, or its end.")
    heartbeating = serializers.SerializerMethodField(
        help_text="Not ended and heartbeating within three heartbeats (as courtside_workers_alive counts).")
    last_heartbeat_age_seconds = serializers.SerializerMethodField()
    current_run = serializers.UUIDField(source="current_run_id", read_only=True, allow_null=True)

    class Meta:
        model = WorkerProcess
        fields = ["id", "host", "pid", "cluster", "name", "state", "heartbeating", "last_heartbeat_at",
                  "last_heartbeat_age_seconds", "current_run", "current_since", "tasks_done", "started_at",
                  "ended_at", "end"]

    def get_state(self, worker) -> str:
        return selectors.worker_state(worker, now=self.context.get("now"))

    def get_heartbeating(self, worker) -> bool:
        return selectors.worker_heartbeating(worker, now=self.context.get("now"))

    def get_last_heartbeat_age_seconds(self, worker) -> float:
        return round(selectors.worker_heartbeat_age(worker, now=self.context.get("now")), 1)
