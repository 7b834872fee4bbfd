"""Recurring runs: a TaskSchedule mirrored into django-q2's Schedule, whose scheduler fires it as a TaskRun.

There is one way to schedule work: a TaskSchedule. A tenant's or the operator's is made on the schedules
page (schedule_save); a system one is declared in code beside its task (tasks.registry.system_job) and
reconciled into TaskSchedule after every migrate (system_schedules_reconcile).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from tasks import registry
from tasks.actions.submit import task_submit
from tasks.actions.validate import bounded_arguments, check_tenant_scope, parse_priority, tenant_limits
from tasks.models import Priority, TaskRun, TaskSchedule


def _sync_q_schedule(schedule: TaskSchedule) -> None:
    """Mirror a TaskSchedule into django-q2's Schedule, whose scheduler does the timing."""
    from django_q.models import Schedule

    q = schedule.q_schedule or Schedule(func="tasks.runner.fire_schedule")
    q.name = f"courtside:{schedule.pk}"
    q.func = "tasks.runner.fire_schedule"
    q.args = repr((schedule.pk,))
    q.kwargs = "{}"
    q.repeats = -1 if schedule.enabled else 0
    if schedule.cron:
        q.schedule_type, q.cron, q.minutes = Schedule.CRON, schedule.cron, None
    else:
        q.schedule_type, q.cron, q.minutes = Schedule.MINUTES, None, schedule.interval_minutes
    if q.pk is None:
        q.next_run = timezone.now()
    q.full_clean()
    q.save()
    if schedule.q_schedule_id != q.pk:
        schedule.q_schedule = q
        schedule.save(update_fields=["q_schedule"])


def schedule_validate(*, task_name: str, arguments, tenant, cron: str = "", priority=None,
                      by_operator: bool = False) -> dict:
    """What a schedule must satisfy beyond its model: a registered task, valid arguments, scope, cron.

    A tenant's own schedule (its admin) names only tasks it may submit, at most its plan's priority.
    """
    from croniter import croniter

    limits = tenant_limits(tenant, by_operator)
    spec = registry.get_spec(task_name, for_tenant=limits is not None)
    priority = parse_priority(priority)
    if limits is not None and priority is not None and priority > limits.max_priority:
        raise ValidationError({"priority": f"{limits.who} allows task priorities up to "
                                           f"{Priority(limits.max_priority).name}."}, code="priority_not_allowed")
    arguments, _text = bounded_arguments(arguments)
    arguments = spec.validate(arguments)
    check_tenant_scope(spec, tenant)
    cron = (cron or "").strip()
    if cron and not croniter.is_valid(cron):
        raise ValidationError({"cron": f"{cron!r} is not a valid cron expression."})
    return arguments


def schedule_save(*, schedule: TaskSchedule | None = None, name: str, task_name: str, arguments: dict | None = None,
                  tenant=None, priority=Priority.NORMAL, cron: str = "", interval_minutes: int | None = None,
                  enabled: bool = True, created_by: str = "", by_operator: bool = False) -> TaskSchedule:
    """Create or change a schedule; the task name and arguments are validated like a submission."""
    arguments = schedule_validate(task_name=task_name, arguments=arguments, tenant=tenant, cron=cron,
                                  priority=priority, by_operator=by_operator)
    cron = (cron or "").strip()
    with transaction.atomic():
        schedule = schedule or TaskSchedule(created_by=created_by)
        schedule.name, schedule.task_name, schedule.arguments, schedule.tenant = name, task_name, arguments, tenant
        schedule.priority = parse_priority(priority)
        schedule.cron, schedule.interval_minutes, schedule.enabled = cron, interval_minutes, enabled
        schedule.full_clean(exclude=["q_schedule"])
        schedule.save()
        _sync_q_schedule(schedule)
    return schedule


def schedule_delete(*, schedule: TaskSchedule) -> None:
    with transaction.atomic():
        if schedule.q_schedule_id:
            schedule.q_schedule.delete()
        schedule.delete()


def schedule_fire(*, schedule_id: int) -> TaskRun | None:
    """Submit one run of a schedule now (django-q2's scheduler calls this when it is due)."""
    schedule = TaskSchedule.objects.select_related("tenant").filter(pk=schedule_id).first()
    if schedule is None or not schedule.enabled:
        return None
    # Each run of a tenant's schedule is the tenant's (its quota, its caps), at most its plan's priority now
    # (the operator may have set a higher one, or the plan changed since).
    limits = tenant_limits(schedule.tenant, False)
    priority = schedule.priority if limits is None else min(schedule.priority, limits.max_priority)
    return task_submit(
        name=schedule.task_name, arguments=schedule.arguments, tenant=schedule.tenant, priority=priority,
        submitted_by=f"schedule {schedule.name}", schedule=schedule,
    )


def system_schedules_reconcile() -> dict[str, int]:
    """Make the system schedules on the schedules page exactly those declared in code (registry.system_job).

    Each declared one is created, or brought back to its declaration (task, timing, arguments, priority);
    one no longer declared is removed. Whether one is enabled stays the operator's choice. Run once after
    every migrate (tasks.apps); safe to run again.
    """
    declared = {schedule.name: schedule for schedule in registry.system_schedules()}
    counts = {"created": 0, "updated": 0, "removed": 0}
    with transaction.atomic():
        for schedule in TaskSchedule.objects.filter(system=True).exclude(name__in=declared).select_related(
                "q_schedule"):
            schedule_delete(schedule=schedule)
            counts["removed"] += 1
        existing = {s.name: s for s in TaskSchedule.objects.filter(name__in=declared)}
        for name, declaration in declared.items():
            values = {"task_name": declaration.task_name, "arguments": declaration.arguments, "tenant": None,
                      "priority": registry.get_spec(declaration.task_name).priority, "cron": declaration.cron,
                      "interval_minutes": declaration.interval_minutes, "system": True}
            schedule = existing.get(name)
            if schedule is None:
                schedule = TaskSchedule(name=name, created_by="system", **values)
                counts["created"] += 1
            elif schedule.q_schedule_id is None or any(getattr(schedule, k) != v for k, v in values.items()):
                for key, value in values.items():
                    setattr(schedule, key, value)
                counts["updated"] += 1
            else:
                continue
            schedule.full_clean(exclude=["q_schedule"])
            schedule.save()
            _sync_q_schedule(schedule)
    return counts
