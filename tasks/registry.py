"""The allow-list of task names: what may be submitted, with which arguments, for whom.

A task function takes a TaskContext first and its validated keyword arguments
after it. Every app adds its own tasks with `@register_task` in its `tasks.py`
(league, tenants, the service registry, security), which the tasks app
imports at start-up; a job that runs on a timetable is declared there too,
with `@system_job` (its schedule lives beside it, as NetBox's system jobs do).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import jsonschema
from django.core.exceptions import ImproperlyConfigured, ValidationError

from tasks.models import Priority

# Tenant scope of a task: who may submit it, and in which schema it runs.
TENANT = "tenant"  # runs in a tenant's schema; needs a tenant
OPERATOR = "operator"  # runs in public; operator only
ANY = "any"  # either


@dataclass(frozen=True)
class TaskSpec:
    name: str
    func: Callable
    description: str
    schema: dict = field(default_factory=lambda: {"type": "object", "properties": {}, "additionalProperties": False})
    scope: str = ANY
    priority: int = Priority.NORMAL
    timeout: int | None = None
    max_retries: int = 0

    @cached_property
    def validator(self) -> jsonschema.Draft202012Validator:
        # Built once per task: building it costs more than validating small arguments.
        return jsonschema.Draft202012Validator(self.schema)

    def validate(self, arguments) -> dict:
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise ValidationError({"args": "Arguments must be a JSON object."}, code="invalid_arguments")
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: e.path)
        if errors:
            detail = [
                f"{'.'.join(str(p) for p in error.path) or '(arguments)'}: {error.message}" for error in errors
            ]
            raise ValidationError({"args": detail}, code="invalid_arguments")
        return arguments

    def as_dict(self) -> dict:
        return {
            "name": self.name, "description": self.description, "scope": self.scope,
            "arguments_schema": self.schema, "default_priority": Priority(self.priority).label,
            "timeout": self.timeout, "max_retries": self.max_retries,
        }


_registry: dict[str, TaskSpec] = {}


def register_task(name: str, *, schema: dict | None = None, scope: str = ANY, priority: int = Priority.NORMAL,
                  timeout: int | None = None, max_retries: int = 0, description: str = ""):
    """Add a function to the allow-list under `name`."""

    def decorator(func):
        spec_schema = schema or {"type": "object", "properties": {}, "additionalProperties": False}
        jsonschema.Draft202012Validator.check_schema(spec_schema)
        _registry[name] = TaskSpec(
            name=name, func=func, description=description or (func.__doc__ or "").strip().splitlines()[0],
            schema=spec_schema, scope=scope, priority=priority, timeout=timeout, max_retries=max_retries,
        )
        return func

    return decorator


def get_spec(name: str, *, for_tenant: bool = False) -> TaskSpec:
    """The task registered under `name`; for a tenant, only a task it may submit.

    An unknown name (and, for a tenant, an operator task's) is a ValidationError listing the names the
    asker may submit: a tenant never learns the operator's task names from it.
    """
    spec = _registry.get(name) if isinstance(name, str) else None
    if spec is None or (for_tenant and spec.scope == OPERATOR):
        known = ", ".join(s.name for s in specs(for_tenant=True if for_tenant else None))
        shown = repr(name)[:100]
        raise ValidationError({"name": f"Unknown task {shown}. Known tasks: {known}."}, code="unknown_task")
    return spec


def specs(*, for_tenant: bool | None = None) -> list[TaskSpec]:
    """Registered tasks, those a tenant may submit when for_tenant is True, operator's when False."""
    items = sorted(_registry.values(), key=lambda s: s.name)
    if for_tenant is True:
        return [s for s in items if s.scope in (TENANT, ANY)]
    if for_tenant is False:
        return [s for s in items if s.scope in (OPERATOR, ANY)]
    return items


def names() -> list[str]:
    return sorted(_registry)


# ------------------------------------------------------------ system schedules declared in code

@dataclass(frozen=True)
class SystemSchedule:
    """A system job's timetable, declared beside its task (as NetBox's @system_job declares an interval).

    Reconciled into TaskSchedule after every migrate (tasks.actions.schedules.system_schedules_reconcile):
    shown on the schedules page with its last and next run; its timing comes from here, not the page.
    """

    name: str  # the schedule's name on the schedules page
    task_name: str
    cron: str = ""
    interval_minutes: int | None = None
    arguments: dict = field(default_factory=dict)
    enabled: Callable[[], bool] | None = None  # asked at each reconcile: False removes the schedule


_system_schedules: dict[str, SystemSchedule] = {}


def system_job(name: str, *, every_minutes: int | None = None, cron: str = "", schedule_name: str = "",
               arguments: dict | None = None, enabled: Callable[[], bool] | None = None, **task_options):
    """Register an operator task (like register_task) that runs on a schedule declared here.

        @system_job("tenants.pool_refill", every_minutes=10, timeout=300)
        def pool_refill(ctx): ...

    One decorated function in the app's tasks.py is the whole of a new scheduled system job: the next
    migrate puts it on the schedules page, and django-q2's scheduler fires it as a TaskRun.
    """
    if (every_minutes is None) == (not cron):
        raise ImproperlyConfigured(f"System job {name!r}: give every_minutes or cron, one of them.")
    if every_minutes is not None and (isinstance(every_minutes, bool) or not isinstance(every_minutes, int)
                                      or every_minutes < 1):
        raise ImproperlyConfigured(f"System job {name!r}: every_minutes must be a whole number of minutes, 1 or more.")
    task_options.setdefault("scope", OPERATOR)
    register = register_task(name, **task_options)

    def decorator(func):
        register(func)
        schedule = SystemSchedule(
            name=schedule_name or f"system: {name}", task_name=name, cron=cron, interval_minutes=every_minutes,
            arguments=dict(arguments or {}), enabled=enabled,
        )
        get_spec(name).validate(schedule.arguments)  # a declaration with bad arguments fails at start-up
        _system_schedules[schedule.name] = schedule
        return func

    return decorator


def system_schedules() -> list[SystemSchedule]:
    """The system schedules declared in code, those switched on now."""
    return [s for s in sorted(_system_schedules.values(), key=lambda s: s.name) if s.enabled is None or s.enabled()]
