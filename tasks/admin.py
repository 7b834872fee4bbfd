"""Task runs and schedules in both admins: the operator's sees all, a tenant's only its own."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from core import charts
from core.admin import ReadOnlyAdminMixin, operator_site, tenant_site
from core.errors import DomainError
from tasks import actions, registry, selectors
from tasks.admin_submit import TaskSubmitViewMixin
from tasks.models import TERMINAL, Priority, Status, TaskAttempt, TaskRun, TaskSchedule, WorkerProcess, public_status
from tenants import media


def _tenant(request):
    tenant = getattr(request, "tenant", None)
    return None if tenant is None or tenant.schema_name == "public" else tenant


class TaskAttemptInline(admin.TabularInline):
    model = TaskAttempt
    extra = 0
    can_delete = False
    fields = ["number", "outcome", "started_at", "finished_at", "retry_delay", "worker_pid", "error"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class TaskRunAdmin(TaskSubmitViewMixin, admin.ModelAdmin):
    list_display = ["name", "tenant_label", "priority_label", "shown_status", "progress_bar", "attempts", "created_at",
                    "finished_at"]
    list_filter = ["status", "priority", "name", ("finished_at", admin.DateFieldListFilter)]
    search_fields = ["name", "args_summary", "submitted_by", "id"]
    actions = ["cancel_runs", "retry_runs"]
    inlines = [TaskAttemptInline]
    change_list_template = "admin/tasks/taskrun/change_list.html"
    change_form_template = "admin/tasks/taskrun/change_form.html"
    readonly_fields = [
        "id", "name", "arguments", "tenant", "schema_name", "priority", "status_detail", "attempts", "lost_attempts",
        "max_retries", "timeout", "progress_bar", "progress_message", "cancel_requested", "run_at",
        "next_attempt_at", "result", "error", "traceback", "submitted_by", "schedule", "retry_of", "created_at",
        "started_at", "finished_at", "worker_pid",
    ]
    fields = readonly_fields
    # The tenant column and filter are the operator's; a tenant sees only its own runs anyway.
    operator = True

    def get_list_filter(self, request):
        return [*self.list_filter, "schema_name"] if self.operator else self.list_filter

    def get_queryset(self, request):
        return super().get_queryset(request).for_tenant(_tenant(request)).select_related("tenant")

    def has_add_permission(self, request):
        return False  # submitted from the API, a command or a schedule, through the allow-list

    def has_change_permission(self, request, obj=None):
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="tenant", ordering="schema_name")
    def tenant_label(self, run):
        return run.schema_name

    @admin.display(description="priority", ordering="priority")
    def priority_label(self, run):
        return Priority(run.priority).label

    @admin.display(description="status", ordering="status")
    def shown_status(self, run):
        # A run delivered to a worker whose task has not started is queued (the detail page says more).
        return run.get_public_status_display()

    @admin.display(description="status")
    def status_detail(self, run):
        return run.get_status_display()

    @admin.display(description="progress", ordering="progress")
    def progress_bar(self, run):
        # The label reads as the page's poller writes it (progress_poll.html): "<percent>% <status>".
        return format_html(
            '<progress class="task-progress" data-run="{}" max="100" value="{}" title="{}"></progress> '
            '<span class="task-progress-label" data-run="{}">{}% {}</span>',
            run.pk, round(run.progress * 100), run.progress_message, run.pk, round(run.progress * 100),
            run.public_status,
        )

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request, queryset):
        done = 0
        for run in queryset:
            try:
                actions.task_cancel(run=run, cancelled_by=request.user.get_username())
                done += 1
            except ValidationError as error:
                self.message_user(request, f"{run}: {' '.join(error.messages)}", messages.WARNING)
        if done:
            self.message_user(request, f"Cancelled {done} run(s).", messages.SUCCESS)

    @admin.action(description="Retry the selected runs (as new runs)")
    def retry_runs(self, request, queryset):
        done = 0
        for run in queryset:
            try:
                # From a tenant's admin the retry is the tenant's own submission, within its plan.
                actions.task_retry(run=run, submitted_by=request.user.get_username(), by_operator=self.operator)
                done += 1
            except ValidationError as error:
                self.message_user(request, f"{run}: {' '.join(error.messages)}", messages.WARNING)
            except DomainError as error:  # the tenant's quota or its cap on unfinished runs
                self.message_user(request, f"{run}: {error.message}", messages.WARNING)
                break
        if done:
            self.message_user(request, f"Resubmitted {done} run(s).", messages.SUCCESS)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        """A run's page: read-only detail, its buttons, its attempts as a timeline, its live progress."""
        run = self.get_object(request, object_id)
        if run is None or not self.has_view_permission(request, run):
            raise Http404("No such task run.")
        link = media.result_link(run.result, schema_name=run.schema_name, request=request)
        can_act = self.may_act(request)
        context = {
            **self.admin_site.each_context(request), "opts": self.opts, "original": run, "run": run,
            "title": f"Task run {run.name}", "subtitle": str(run.pk), "result_link": link,
            "status": run.get_public_status_display(), "priority": Priority(run.priority).label,
            "progress_bar": self.progress_bar(run),
            "attempts": list(run.attempt_log.order_by("number")),
            "dependencies": list(run.depends_on.only("pk", "name", "status")),
            "buttons": [b for b in (
                ("cancel", "Cancel", run.status not in TERMINAL),
                ("retry", "Retry", run.status in (Status.FAILED, Status.CANCELLED)),
                ("run_again", "Run again", run.status in TERMINAL),
            ) if can_act and b[2]],
            "operator": self.operator,
        }
        return TemplateResponse(request, "admin/tasks/taskrun/detail.html", context)

    def may_act(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    def act_view(self, request, object_id, verb):
        """POST (CSRF-checked by the admin) Cancel, Retry or Run again from a run's page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        run = self.get_object(request, object_id)
        if run is None:
            raise Http404("No such task run.")
        if not self.may_act(request):
            raise PermissionDenied
        by = request.user.get_username()
        target = run
        try:
            if verb == "cancel":
                actions.task_cancel(run=run, cancelled_by=by)
                self.message_user(request, "Cancellation requested.", messages.SUCCESS)
            elif verb == "retry":
                target = actions.task_retry(run=run, submitted_by=by, by_operator=self.operator)
                self.message_user(request, "Resubmitted as a new run.", messages.SUCCESS)
            elif verb == "run_again":
                target = actions.task_submit(name=run.name, arguments=run.arguments, tenant=run.tenant,
                                             priority=run.priority, submitted_by=by, by_operator=self.operator)
                self.message_user(request, "Submitted again as a new run.", messages.SUCCESS)
            else:
                raise Http404("No such action.")
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
        except DomainError as error:  # the tenant's quota or its cap on unfinished runs
            self.message_user(request, error.message, messages.ERROR)
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:tasks_taskrun_change", args=[target.pk]))

    def get_urls(self):
        progress = self.admin_site.admin_view(self.progress_view)
        act = self.admin_site.admin_view(self.act_view)
        workers = self.admin_site.admin_view(self.workers_view)
        submit = self.admin_site.admin_view(self.submit_view)
        return [path("progress/", progress, name="tasks_taskrun_progress"),
                path("submit/", submit, name="tasks_taskrun_submit"),
                path("workers/", workers, name="tasks_workers"),
                path("<path:object_id>/do/<str:verb>/", act, name="tasks_taskrun_act"), *super().get_urls()]

    def workers_view(self, request):
        """The operator's view of the task cluster: each cluster and worker, what it runs, how fast."""
        if not self.operator or not self.has_view_permission(request):
            raise Http404("No workers page here.")
        context = {**self.admin_site.each_context(request), "opts": self.opts, "title": "Task workers",
                   **selectors.worker_rows(), "broker": settings.Q_CLUSTER.get("name", ""),
                   "shared_stats": bool(settings.Q_CLUSTER.get("redis")) or settings.CACHES["default"][
                       "BACKEND"] != "django.core.cache.backends.locmem.LocMemCache"}
        return TemplateResponse(request, "admin/tasks/workers.html", context)

    def progress_view(self, request):
        """JSON the progress bars poll: {run id: {progress, status, message}} for the ids asked."""
        ids = [i for i in request.GET.getlist("id") if i][:200]
        try:
            runs = self.get_queryset(request).filter(pk__in=ids).values("pk", "progress", "status",
                                                                       "progress_message")
            data = {str(r["pk"]): {"progress": r["progress"], "status": public_status(r["status"]),
                                   "message": r["progress_message"]} for r in runs}
        except ValidationError:
            raise Http404("Bad run id.") from None
        return JsonResponse({"runs": data})

    def changelist_view(self, request, extra_context=None):
        depth = selectors.queue_depth(tenant=_tenant(request))
        top = max(depth.values()) or 1
        hours = selectors.outcomes_per_hour(tenant=_tenant(request))
        points = [(f"{h['hour']:%H}h", h["succeeded"]) for h in hours]
        failures = [(f"{h['hour']:%H}h", h["failed"] + h["cancelled"]) for h in hours]
        extra_context = {
            **(extra_context or {}), "may_submit": self.may_act(request),
            "queue_depth": [{"label": label, "count": count, "width": round(100 * count / top)}
                            for label, count in depth.items()],
            "outcome_charts": [
                charts.bar_chart(points, title="Succeeded per hour, last 24 h (UTC)", label_every=3),
                charts.bar_chart(failures, title="Failed or cancelled per hour, last 24 h (UTC)",
                                 color=charts.OVER_COLOR, label_every=3),
            ],
        }
        return super().changelist_view(request, extra_context=extra_context)


class TaskScheduleAdmin(admin.ModelAdmin):
    list_display = ["name", "task_name", "tenant", "cron", "interval_minutes", "priority", "enabled", "kind",
                    "last_run", "next_run"]
    list_filter = ["enabled", "system", "task_name"]
    fields = ["name", "task_name", "arguments", "tenant", "priority", "cron", "interval_minutes", "enabled"]
    operator = True

    def get_fields(self, request, obj=None):
        return self.fields if self.operator else [f for f in self.fields if f != "tenant"]

    def get_queryset(self, request):
        return selectors.schedule_list(tenant=_tenant(request) if not self.operator else None)

    @admin.display(description="kind", ordering="system")
    def kind(self, schedule):
        return "System (declared in code)" if schedule.system else "Tenant" if schedule.tenant_id else "Operator"

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, schedule):
        return schedule.last_run_at or "—"

    @admin.display(description="next run")
    def next_run(self, schedule):
        q = schedule.q_schedule
        return q.next_run if q is not None and schedule.enabled and q.repeats != 0 else "—"

    def has_change_permission(self, request, obj=None):
        # A system schedule's timing is its declaration in code (tasks.registry.system_job): shown, not edited.
        return super().has_change_permission(request, obj) and not (obj is not None and obj.system)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.system)

    def get_form(self, request, obj=None, **kwargs):
        form_class = super().get_form(request, obj, **kwargs)
        operator = self.operator
        specs = registry.specs() if operator else registry.specs(for_tenant=True)

        class ScheduleForm(form_class):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                self.fields["task_name"] = forms.ChoiceField(
                    choices=[(s.name, f"{s.name} — {s.description}") for s in specs], label="task"
                )

            def clean(self):
                data = super().clean()
                tenant = data.get("tenant") if operator else _tenant(request)
                if data.get("task_name"):
                    # The registry's word (arguments schema, tenant scope, cron) as form errors.
                    try:
                        actions.schedule_validate(task_name=data["task_name"], arguments=data.get("arguments"),
                                                   tenant=tenant, cron=data.get("cron") or "",
                                                   priority=data.get("priority"), by_operator=operator)
                    except ValidationError as error:
                        raise forms.ValidationError(error.messages) from error
                return data

        return ScheduleForm

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        actions.schedule_save(
            schedule=obj if change else None, name=data["name"], task_name=data["task_name"],
            arguments=data.get("arguments") or {}, tenant=data.get("tenant") if self.operator else _tenant(request),
            priority=data["priority"], cron=data.get("cron") or "", interval_minutes=data.get("interval_minutes"),
            enabled=data.get("enabled", True), created_by=request.user.get_username(), by_operator=self.operator,
        )

    def delete_model(self, request, obj):
        actions.schedule_delete(schedule=obj)

    def delete_queryset(self, request, queryset):
        for schedule in queryset.filter(system=False):  # a system schedule is the code's to remove
            actions.schedule_delete(schedule=schedule)


class TenantTaskRunAdmin(TaskRunAdmin):
    operator = False
    list_display = [c for c in TaskRunAdmin.list_display if c != "tenant_label"]


class TenantTaskScheduleAdmin(TaskScheduleAdmin):
    operator = False
    list_display = [c for c in TaskScheduleAdmin.list_display if c not in ("tenant", "kind")]


class WorkerProcessAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Worker health: each cluster worker's pid, what it runs, its last heartbeat, tasks done, how it ended."""

    list_display = ["pid", "host", "cluster", "state", "current_run_link", "tasks_done", "started_at",
                    "last_heartbeat_at", "ended_at"]
    list_filter = ["end", "cluster", "host"]
    search_fields = ["pid", "host", "cluster", "current_run__id"]
    readonly_fields = ["host", "pid", "cluster", "name", "state", "current_run_link", "current_since", "tasks_done",
                       "started_at", "last_heartbeat_at", "ended_at", "end"]
    fields = readonly_fields

    def get_queryset(self, request):
        return selectors.worker_list()

    @admin.display(description="state")
    def state(self, worker):
        return selectors.worker_state(worker)

    @admin.display(description="current run")
    def current_run_link(self, worker):
        if worker.current_run_id is None:
            return "—"
        url = reverse(f"{self.admin_site.name}:tasks_taskrun_change", args=[worker.current_run_id])
        return format_html('<a href="{}">{}</a>', url, str(worker.current_run_id)[:8])



operator_site.register(TaskRun, TaskRunAdmin)
operator_site.register(WorkerProcess, WorkerProcessAdmin)
operator_site.register(TaskSchedule, TaskScheduleAdmin)
tenant_site.register(TaskRun, TenantTaskRunAdmin)
tenant_site.register(TaskSchedule, TenantTaskScheduleAdmin)
