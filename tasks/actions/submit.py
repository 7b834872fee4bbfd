"""Submitting runs: one (task_submit) or a DAG at once (task_submit_batch), within the submitter's limits."""

from __future__ import annotations

import graphlib
import uuid
from collections.abc import Iterable
from contextlib import contextmanager, nullcontext

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from core.db import raw_cursor
from core.errors import DomainError
from tasks.actions.validate import (
    build_run,
    check_chain,
    check_dependency_count,
    eta_from,
    tenant_limits,
    validated_dependencies,
)
from tasks.engine.broker import enqueue_run, enqueue_runs, inserting_broker
from tasks.engine.dependencies import dependents_settle
from tasks.engine.execution import tenant_for_schema
from tasks.engine.rows import insert_run_row, insert_run_rows
from tasks.engine.sql import public_table
from tasks.limits import SubmitLimits, submit_limits
from tasks.models import Status, TaskRun, TaskSchedule, TenantRunCount
from tenants import metering

RUN_LIMIT_SQLSTATE = "CQ002"  # raised by courtside_count_task_runs() (migration tasks 0007)


def current_tenant():
    """The tenant of the connection's schema, or None in public."""
    schema = getattr(connection, "schema_name", "public")
    if schema == "public":
        return None
    tenant = getattr(connection, "tenant", None)
    if tenant is not None and getattr(tenant, "schema_name", None) == schema and getattr(tenant, "pk", None):
        return tenant
    return tenant_for_schema(schema)


def _unfinished_sql() -> str:
    """A scalar subquery: the tenant's runs waiting, queued or running, as the run table's triggers count them.

    The table named with its schema, so it goes on a raw cursor (no SET search_path first) and into the
    admission's own statement (metering.Held).
    """
    return (f"SELECT COALESCE(SUM(CASE side WHEN '{TenantRunCount.Side.SUBMITTED.value}' THEN runs ELSE -runs END), 0) "
            f"FROM {public_table(TenantRunCount)} WHERE tenant_id = %s")


def _unfinished_runs(tenant) -> int:
    with raw_cursor() as cursor:
        cursor.execute(_unfinished_sql(), [tenant.pk])
        return int(cursor.fetchone()[0])


def _run_limit_error(tenant, unfinished: int | None) -> DomainError:
    plan = tenant.plan
    return DomainError(
        f"The {plan.name} plan allows {plan.max_active_task_runs} unfinished task runs at once (waiting, queued or "
        f"running); {tenant.schema_name} has {'them' if unfinished is None else unfinished}. Wait for runs to "
        "finish or cancel some.",
        code="task_run_limit_exceeded", status=429,
        detail={"limit": plan.max_active_task_runs, "unfinished": unfinished},
    )


@contextmanager
def within_run_limit(tenant):
    """The run table's refusal of a run past the tenant's cap (SQLSTATE CQ002, migration 0007) as a 429."""
    try:
        yield
    except DatabaseError as error:
        cause = error.__cause__
        if tenant is None or getattr(cause, "sqlstate", None) != RUN_LIMIT_SQLSTATE:
            raise
        detail = getattr(getattr(cause, "diag", None), "message_detail", None) or ""
        raise _run_limit_error(tenant, int(detail) if detail.isdigit() else None) from None


def admit_runs(*, tenant, count: int, limits: SubmitLimits | None) -> None:
    """A tenant's own submission of `count` runs: within its cap of unfinished runs, then counted as calls.

    The cap is checked here first so a refused submission spends no quota; the run table's trigger
    checks it again, exactly, as the rows go in (two submissions at once cannot both take the last
    place). Each run then counts as one API call against the tenant's daily quota, all or none
    (tenants.metering.calls_admit, the same admission as a request's). The operator's submissions for a
    tenant spend none of its calls; the cap holds for them too (the trigger).
    """
    if limits is None or not limits.tenant_submits:
        return
    cap = tenant.plan.max_active_task_runs if tenant.plan is not None else None
    if not settings.TENANT_METERING_ENABLED:
        if cap is not None and (unfinished := _unfinished_runs(tenant)) + count > cap:
            raise _run_limit_error(tenant, unfinished)
        return
    # The cap read in the admission's statement, the admission skipped past it: one round trip for both.
    held = None if cap is None else metering.Held(
        sql=_unfinished_sql(), params=[tenant.pk], adding=count, most=cap,
        refusal=lambda unfinished: _run_limit_error(tenant, unfinished))
    metering.calls_admit(tenant=tenant, calls=count, held=held)


def task_submit(*, name: str, arguments: dict | None = None, tenant=None, priority=None, run_at=None,
                countdown: float | None = None, depends_on: Iterable = (), run_if_dependency_fails: bool = False,
                max_retries: int | None = None, timeout: int | None = None, backoff_base: float | None = None,
                backoff_cap: float | None = None, submitted_by: str = "", schedule: TaskSchedule | None = None,
                by_operator: bool = False) -> TaskRun:
    """Validate, record and (once the transaction commits) enqueue one task run.

    A run for a tenant is the tenant's own submission, held to its plan's limits, unless `by_operator`
    (the operator's API, admin and commands submitting for it).
    """
    now = timezone.now()
    eta = eta_from(run_at=run_at, countdown=countdown, now=now)
    limits = tenant_limits(tenant, by_operator)
    run = build_run(
        name=name, arguments=arguments, tenant=tenant, priority=priority, max_retries=max_retries,
        timeout=timeout, backoff_base=backoff_base, backoff_cap=backoff_cap,
        run_if_dependency_fails=run_if_dependency_fails, submitted_by=submitted_by, schedule=schedule, eta=eta,
        limits=limits,
    )
    dependencies = validated_dependencies(depends_on, tenant)
    if dependencies:
        run.depth = 1 + max(dependency.depth for dependency in dependencies)
        check_chain(run.depth, limits or submit_limits(tenant=tenant, by_operator=True))
    admit_runs(tenant=tenant, count=1, limits=limits)
    if not dependencies and not connection.in_atomic_block:
        run.status = Status.QUEUED
        with within_run_limit(tenant):
            if inserting_broker():
                # No transaction around us: the run row and its broker package go in one statement,
                # committed together, so a worker can never see one without the other.
                enqueue_run(run.pk, eta=run.run_at, priority=run.priority, timeout=run.timeout,
                         tenant_id=run.tenant_id, insert_run=run)
            else:
                insert_run_row(run)  # committed (autocommit) before the package can reach a worker
                enqueue_run(run.pk, eta=run.run_at, priority=run.priority, timeout=run.timeout,
                         tenant_id=run.tenant_id)
        run._state.adding = False
        return run
    # A run with dependencies is written with its edges atomically; the enqueue waits for the commit.
    with within_run_limit(tenant), transaction.atomic() if dependencies else nullcontext():
        run.status = Status.WAITING if dependencies else Status.QUEUED
        run.save(force_insert=True)
        if dependencies:
            run.depends_on.set(dependencies)
        dispatch_on_commit([run], check_waiting=[run.pk] if dependencies else [])
    return run


def task_submit_batch(*, items: list[dict], tenant=None, submitted_by: str = "", by_operator: bool = False,
                      ) -> list[TaskRun]:
    """Submit a DAG at once: items name each other by `key` in `depends_on` (or name existing run ids).

    A cycle, an unknown key or any invalid item refuses the whole batch: nothing is queued. The runs and
    their edges go in two statements whatever the batch's shape (no recursion: a 1,200-run chain listed
    last first is as quick as any), within the batch size and chain length of the submitter's limits.
    """
    if not isinstance(items, list) or not items:
        raise ValidationError({"tasks": "Give a non-empty list of tasks."})
    limits = task_batch_size_validate(count=len(items), tenant=tenant, by_operator=by_operator)
    if not all(isinstance(item, dict) for item in items):
        raise ValidationError({"tasks": "Each task of a batch is a JSON object."})
    keys = [str(item.get("key") or index) for index, item in enumerate(items)]
    position = {key: index for index, key in enumerate(keys)}
    if len(position) != len(keys):
        raise ValidationError({"tasks": "Each task of a batch needs a distinct key."})
    named: dict[str, list[str]] = {}
    for key, item in zip(keys, items, strict=True):
        depends_on = item.get("depends_on") or []
        if not isinstance(depends_on, list | tuple):
            raise ValidationError({f"tasks[{key}]": "depends_on must be a list of keys or run ids."})
        check_dependency_count(len(depends_on))
        named[key] = [str(d) for d in depends_on]
    graph = {key: [d for d in names if d in position] for key, names in named.items()}
    order = _topological_order(graph)
    external = {str(run.pk): run for run in validated_dependencies(
        sorted({d for names in named.values() for d in names if d not in position}), tenant, per_run=False)}
    now = timezone.now()
    runs: dict[str, TaskRun] = {}
    edges: list[tuple[TaskRun, TaskRun]] = []
    for key in order:
        item = items[position[key]]
        try:
            eta = eta_from(run_at=item.get("run_at"), countdown=item.get("countdown"), now=now)
            run = build_run(
                name=item.get("name"), arguments=item.get("args", item.get("arguments")), tenant=tenant,
                priority=item.get("priority"), max_retries=item.get("max_retries"), timeout=item.get("timeout"),
                backoff_base=item.get("backoff_base"), backoff_cap=item.get("backoff_cap"),
                run_if_dependency_fails=bool(item.get("run_if_dependency_fails", False)),
                submitted_by=submitted_by, schedule=None, eta=eta, limits=limits,
            )
            dependencies = list({id(d): d for d in (runs[n] if n in position else external[str(uuid.UUID(n))]
                                                    for n in named[key])}.values())
            if dependencies:
                run.depth = 1 + max(dependency.depth for dependency in dependencies)
                check_chain(run.depth, limits)
        except ValidationError as error:
            raise ValidationError({f"tasks[{key}]": _field_messages(error)}) from error
        run.status = Status.WAITING if dependencies else Status.QUEUED
        edges += [(run, dependency) for dependency in dependencies]
        runs[key] = run
    admit_runs(tenant=tenant, count=len(runs), limits=limits)
    through = TaskRun.depends_on.through
    with within_run_limit(tenant), transaction.atomic():
        insert_run_rows(list(runs.values()))
        through.objects.bulk_create([through(from_taskrun_id=run.pk, to_taskrun_id=dependency.pk)
                                     for run, dependency in edges], batch_size=5000)
        # A run waiting only on runs of this batch cannot find them ended; one waiting on an existing run may.
        dispatch_on_commit(runs.values(), check_waiting=[
            run.pk for key, run in runs.items() if any(n not in position for n in named[key])])
    return [runs[key] for key in keys]


def _field_messages(error: ValidationError) -> list[str]:
    """An item's errors as "field: message" lines, so a batch's error still names the field."""
    if not hasattr(error, "error_dict"):
        return error.messages
    return [f"{field}: {message}" if field != "__all__" else message
            for field, errors in error.error_dict.items() for message in ValidationError(errors).messages]


def task_batch_size_validate(*, count: int, tenant=None, by_operator: bool = False) -> SubmitLimits:
    """Refuse a batch larger than the submitter's limit (before reading its items); return the limits."""
    limits = submit_limits(tenant=tenant, by_operator=by_operator)
    if count > limits.max_batch_size:
        raise ValidationError({"tasks": f"A batch holds at most {limits.max_batch_size} tasks ({limits.who}); "
                                        f"this one has {count}."}, code="batch_too_large")
    return limits


def _topological_order(graph: dict[str, list[str]]) -> list[str]:
    """Keys so that each comes after the batch keys it depends on; a cycle is a ValidationError."""
    sorter = graphlib.TopologicalSorter(graph)
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as error:
        cycle = error.args[1][::-1]  # graphlib lists it dependency first; read it as "a -> depends on b"
        raise ValidationError({"depends_on": f"Dependency cycle: {' -> '.join(cycle)}."}, code="cycle") from None


def dispatch_on_commit(runs: Iterable[TaskRun], *, check_waiting: list = ()) -> None:
    """Once committed: enqueue the queued runs, and settle the waiting ones whose dependencies may have ended."""
    queued = [(run.pk, run.run_at, run.priority, run.timeout, run.tenant_id) for run in runs
              if run.status == Status.QUEUED]
    waiting = list(check_waiting)

    def dispatch():
        enqueue_runs(queued)  # together: one round trip to the broker for a batch
        if waiting:
            dependents_settle(waiting=waiting)

    transaction.on_commit(dispatch)
