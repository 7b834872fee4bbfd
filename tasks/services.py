"""Every write of the task queue: submit, execute, retry with backoff, cancel, progress, dependencies, schedules.

The flow of one run, readable here top to bottom:
task_submit -> (on commit) _enqueue -> broker -> cluster worker -> tasks.runner.execute
-> run_execute: _claim, the task inside its tenant's schema, then _succeed / _fail
(-> a retry enqueued with a backoff delay) / _cancelled -> dependents_settle.
"""

from __future__ import annotations

import datetime as dt
import functools
import graphlib
import json
import logging
import math
import os
import random
import signal
import time
import traceback as traceback_module
import uuid
from collections.abc import Iterable
from contextlib import contextmanager, nullcontext

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone
from django_q.exceptions import TimeoutException
from django_tenants.utils import tenant_context

from core.errors import DomainError
from core.masking import mask_text
from tasks import conf, registry
from tasks import limits as bounds
from tasks.limits import SubmitLimits, submit_limits
from tasks.models import (
    LEASED,
    TERMINAL,
    Priority,
    Status,
    TaskAttempt,
    TaskEffect,
    TaskRun,
    TaskSchedule,
    TenantRunCount,
)
from tasks.watchdog import watchdog
from tenants import metering

logger = logging.getLogger("tasks")

MAX_ARGS_SUMMARY = 200
# A retry's package may arrive this much before its backoff ends (the broker's clock against ours).
EARLY_TOLERANCE = dt.timedelta(seconds=1)
RUN_LIMIT_SQLSTATE = "CQ002"  # raised by courtside_count_task_runs() (migration tasks 0007)


class TaskCancelled(Exception):
    """Raised inside a running task at a progress report once a cancel was requested."""


class TenantMissing(RuntimeError):
    """The run's tenant no longer exists: the run fails, never falls back to public."""


# ---------------------------------------------------------------- submit

def _tenant_for_schema(schema_name: str):
    from tenants.models import Tenant

    return Tenant.objects.filter(schema_name=schema_name).first()


def current_tenant():
    """The tenant of the connection's schema, or None in public."""
    schema = getattr(connection, "schema_name", "public")
    if schema == "public":
        return None
    tenant = getattr(connection, "tenant", None)
    if tenant is not None and getattr(tenant, "schema_name", None) == schema and getattr(tenant, "pk", None):
        return tenant
    return _tenant_for_schema(schema)


def _bounded_arguments(arguments) -> tuple[dict, str]:
    """The arguments and their JSON text, once they are known not too deep nor too large to validate.

    The depth is walked without recursion first: a value nested thousands deep would recurse in the JSON
    encoder and the schema validator.
    """
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise ValidationError({"args": "Arguments must be a JSON object."}, code="invalid_arguments")
    stack = [(arguments, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else ()
        if children and depth >= bounds.MAX_ARGUMENTS_DEPTH:
            raise ValidationError({"args": f"Arguments may be nested at most {bounds.MAX_ARGUMENTS_DEPTH} levels "
                                           "deep."}, code="arguments_too_deep")
        stack.extend((child, depth + 1) for child in children)
    try:
        text = json.dumps(arguments, sort_keys=True)
    except (TypeError, ValueError):
        raise ValidationError({"args": "Arguments must be JSON values."}, code="invalid_arguments") from None
    if len(text) > bounds.MAX_ARGUMENTS_BYTES:  # characters: at least as many bytes
        raise ValidationError({"args": f"Arguments take at most {bounds.MAX_ARGUMENTS_BYTES} bytes as JSON; these "
                                       f"take {len(text.encode())}."}, code="arguments_too_large")
    return arguments, text


def _summary(text: str) -> str:
    text = mask_text(text)
    return text if len(text) <= MAX_ARGS_SUMMARY else text[: MAX_ARGS_SUMMARY - 1] + "…"


def _seconds(value, field: str, *, most: float, too_long: str) -> float:
    """A finite, non-negative number of seconds up to `most` (never a bool, a string, inf or NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError({field: "Give a number of seconds."})
    if value < 0:
        raise ValidationError({field: "The delay cannot be negative."})
    if value > most:
        raise ValidationError({field: too_long})
    return float(value)


def _parse_priority(priority) -> int:
    if priority is None:
        return None
    if isinstance(priority, str):
        key = priority.strip().upper()
        if key in Priority.names:
            return Priority[key].value
        if key.isdigit():
            priority = int(key)
    if isinstance(priority, int) and not isinstance(priority, bool) and priority in Priority.values:
        return priority
    raise ValidationError({"priority": f"Priority must be one of {', '.join(Priority.names)}."}, code="invalid")


def _when(*, run_at: dt.datetime | None, countdown: float | None, now: dt.datetime) -> dt.datetime | None:
    """When a run may start: None for now. At most tasks.limits.MAX_DELAY (365 days) ahead."""
    if run_at is not None and countdown is not None:
        raise ValidationError("Give run_at or countdown, not both.", code="invalid")
    longest = bounds.MAX_DELAY.total_seconds()
    if countdown is not None:
        countdown = _seconds(countdown, "countdown", most=longest, too_long=(
            f"A run may be delayed by at most {bounds.MAX_DELAY.days} days ({longest:.0f} s)."))
        return now + dt.timedelta(seconds=countdown) if countdown else None
    if run_at is not None:
        if not isinstance(run_at, dt.datetime):
            raise ValidationError({"run_at": "Give run_at as a date and time (ISO 8601 with offset)."})
        if timezone.is_naive(run_at):
            raise ValidationError({"run_at": "Give run_at with a time zone (ISO 8601 with offset)."})
        if run_at < now - dt.timedelta(seconds=1):
            raise ValidationError({"run_at": "run_at is in the past: the delay cannot be negative."},
                                  code="negative_delay")
        if run_at > now + bounds.MAX_DELAY:
            raise ValidationError({"run_at": f"run_at may be at most {bounds.MAX_DELAY.days} days ahead."},
                                  code="too_long")
        return run_at
    return None


def _check_tenant_scope(spec: registry.TaskSpec, tenant) -> None:
    if spec.scope == registry.TENANT and tenant is None:
        raise ValidationError({"tenant": f"Task {spec.name!r} runs for a tenant: give one."}, code="tenant_required")
    if spec.scope == registry.OPERATOR and tenant is not None:
        raise ValidationError({"name": f"Task {spec.name!r} is operator work and cannot run for a tenant."},
                              code="operator_only")


def _check_dependency_count(count: int) -> None:
    if count > bounds.MAX_DEPENDS_ON:
        raise ValidationError({"depends_on": f"A run may wait for at most {bounds.MAX_DEPENDS_ON} runs; this one "
                                             f"names {count} (wait for an intermediate run instead)."},
                              code="too_many_dependencies")


def _validated_dependencies(depends_on: Iterable, tenant, *, per_run: bool = True) -> list[TaskRun]:
    """The runs named, all of them existing and (for a tenant) its own; their depth comes with them."""
    depends_on = list(depends_on or [])
    if per_run:
        _check_dependency_count(len(depends_on))
    ids = []
    for dependency in depends_on:
        if isinstance(dependency, TaskRun):
            ids.append(str(dependency.pk))
            continue
        try:
            ids.append(str(uuid.UUID(str(dependency)[:64])))
        except ValueError:
            raise ValidationError({"depends_on": "Dependencies must be task run ids."}, code="invalid") from None
    if not ids:
        return []
    found = list(TaskRun.objects.filter(pk__in=ids).only("pk", "tenant_id", "depth", "status"))
    missing = set(ids) - {str(run.pk) for run in found}
    if tenant is not None:
        # A tenant may only wait on its own runs: another tenant's ids look missing.
        missing |= {str(run.pk) for run in found if run.tenant_id != tenant.pk}
    if missing:
        shown = sorted(missing)
        more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
        raise ValidationError({"depends_on": f"No such task run: {', '.join(shown[:5])}{more}."}, code="not_found")
    return found


def _check_chain(depth: int, limits: SubmitLimits) -> None:
    if depth > limits.max_chain_length:
        raise ValidationError(
            {"depends_on": f"A dependency chain holds at most {limits.max_chain_length} runs ({limits.who}); "
                           f"this run would be number {depth} of one."},
            code="chain_too_long",
        )


@functools.cache
def _run_fields() -> tuple:
    return tuple((f.attname, f.name if f.is_relation else None, f) for f in TaskRun._meta.concrete_fields)


def _new_run(**values) -> TaskRun:
    """TaskRun(**values) for a new run, 2.5x faster: every value given by position, in field order.

    Django's keyword __init__ looks each field up and goes through the
    relation descriptors (48 us of a submission's 0.7 ms here); positional
    arguments are its fast path, the one it uses for rows it reads. Related
    objects given are cached on the run, so reading run.tenant costs no query.
    """
    row, related = [], []
    for attname, relation, field in _run_fields():
        if relation is not None and relation in values:
            target = values[relation]
            row.append(None if target is None else target.pk)
            if target is not None:
                related.append((field, target))
        else:
            row.append(values[attname] if attname in values else field.get_default())
    run = TaskRun(*row)
    for field, target in related:
        field.set_cached_value(run, target)
    return run


def _build_run(*, name, arguments, tenant, priority, max_retries, timeout, backoff_base, backoff_cap,
               run_if_dependency_fails, submitted_by, schedule, eta, retry_of=None,
               limits: SubmitLimits | None = None) -> TaskRun:
    spec = registry.get_spec(name, for_tenant=limits is not None and limits.tenant_submits)
    arguments, text = _bounded_arguments(arguments)
    arguments = spec.validate(arguments)
    _check_tenant_scope(spec, tenant)
    priority = _parse_priority(priority)
    if limits is not None and limits.tenant_submits:
        if priority is None:
            priority = min(spec.priority, limits.max_priority)  # a task's default, not the tenant's choice
        elif priority > limits.max_priority:
            raise ValidationError(
                {"priority": f"{limits.who} allows task priorities up to {Priority(limits.max_priority).name}."},
                code="priority_not_allowed",
            )
    timeout = spec.timeout or conf.default_timeout() if timeout is None else timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValidationError({"timeout": "The timeout must be a whole number of seconds, at least 1."})
    retry = int(conf.q_cluster().get("retry", 360))
    if timeout + conf.lease_grace() > retry:
        # django-q2 would redeliver a package still running (see PITFALLS: retry must exceed timeout).
        raise ValidationError(
            {"timeout": f"The timeout must be at most {retry - conf.lease_grace()} s "
                        "(the cluster's retry minus the lease grace)."}
        )
    max_retries = spec.max_retries if max_retries is None else max_retries
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or not 0 <= max_retries <= bounds.MAX_RETRIES:
        raise ValidationError({"max_retries": f"max_retries must be between 0 and {bounds.MAX_RETRIES}."})
    run = _new_run(
        name=name, arguments=arguments, args_summary=_summary(text), tenant=tenant,
        schema_name=tenant.schema_name if tenant is not None else "public",
        priority=spec.priority if priority is None else priority, max_retries=max_retries, timeout=timeout,
        run_if_dependency_fails=run_if_dependency_fails, submitted_by=(submitted_by or "")[:150], schedule=schedule,
        run_at=eta, retry_of=retry_of,
    )
    for field, value in (("backoff_base", backoff_base), ("backoff_cap", backoff_cap)):
        if value is None:
            continue
        most = bounds.MAX_BACKOFF_SECONDS
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= most:
            raise ValidationError({field: f"Give a number of seconds between 0 and {bounds.MAX_BACKOFF_SECONDS}."},
                                  code="invalid")
        setattr(run, field, float(value))
    # Every value a caller gives is checked above or by the registry; the rest are ours. Hence no
    # full_clean() here (a tenth of a submission's time); the named constraints are PostgreSQL's.
    run.clean()
    return run


def _unfinished_runs(tenant) -> int:
    """The tenant's runs waiting, queued or running, as the run table's triggers count them."""
    counts = dict(TenantRunCount.objects.filter(tenant_id=tenant.pk).values_list("side", "runs"))
    return counts.get(TenantRunCount.Side.SUBMITTED, 0) - counts.get(TenantRunCount.Side.FINISHED, 0)


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
def _within_run_limit(tenant):
    """The run table's refusal of a run past the tenant's cap (SQLSTATE CQ002, migration 0007) as a 429."""
    try:
        yield
    except DatabaseError as error:
        cause = error.__cause__
        if tenant is None or getattr(cause, "sqlstate", None) != RUN_LIMIT_SQLSTATE:
            raise
        detail = getattr(getattr(cause, "diag", None), "message_detail", None) or ""
        raise _run_limit_error(tenant, int(detail) if detail.isdigit() else None) from None


def _admit_runs(*, tenant, count: int, limits: SubmitLimits | None) -> None:
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
    if cap is not None:
        unfinished = _unfinished_runs(tenant)
        if unfinished + count > cap:
            raise _run_limit_error(tenant, unfinished)
    if settings.TENANT_METERING_ENABLED:
        metering.calls_admit(tenant=tenant, calls=count)


def _tenant_limits(tenant, by_operator: bool) -> SubmitLimits | None:
    """A tenant's own submission's limits; None for the operator's, whose bounds are read only when needed."""
    return submit_limits(tenant=tenant, by_operator=False) if tenant is not None and not by_operator else None


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
    eta = _when(run_at=run_at, countdown=countdown, now=now)
    limits = _tenant_limits(tenant, by_operator)
    run = _build_run(
        name=name, arguments=arguments, tenant=tenant, priority=priority, max_retries=max_retries,
        timeout=timeout, backoff_base=backoff_base, backoff_cap=backoff_cap,
        run_if_dependency_fails=run_if_dependency_fails, submitted_by=submitted_by, schedule=schedule, eta=eta,
        limits=limits,
    )
    dependencies = _validated_dependencies(depends_on, tenant)
    if dependencies:
        run.depth = 1 + max(dependency.depth for dependency in dependencies)
        _check_chain(run.depth, limits or submit_limits(tenant=tenant, by_operator=True))
    _admit_runs(tenant=tenant, count=1, limits=limits)
    if not dependencies and not connection.in_atomic_block:
        run.status = Status.QUEUED
        with _within_run_limit(tenant):
            if _orm_broker():
                # No transaction around us: the run row and its broker package go in one statement,
                # committed together, so a worker can never see one without the other.
                _enqueue(run.pk, eta=run.run_at, priority=run.priority, timeout=run.timeout,
                         tenant_id=run.tenant_id, insert_run=run)
            else:
                from tasks.broker import insert_run_row

                insert_run_row(run)  # committed (autocommit) before the package can reach a worker
                _enqueue(run.pk, eta=run.run_at, priority=run.priority, timeout=run.timeout,
                         tenant_id=run.tenant_id)
        run._state.adding = False
        return run
    # A run with dependencies is written with its edges atomically; the enqueue waits for the commit.
    with _within_run_limit(tenant), transaction.atomic() if dependencies else nullcontext():
        run.status = Status.WAITING if dependencies else Status.QUEUED
        run.save(force_insert=True)
        if dependencies:
            run.depends_on.set(dependencies)
        _after_commit_dispatch([run], check_waiting=[run.pk] if dependencies else [])
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
        _check_dependency_count(len(depends_on))
        named[key] = [str(d) for d in depends_on]
    graph = {key: [d for d in names if d in position] for key, names in named.items()}
    order = _topological_order(graph)
    external = {str(run.pk): run for run in _validated_dependencies(
        sorted({d for names in named.values() for d in names if d not in position}), tenant, per_run=False)}
    now = timezone.now()
    runs: dict[str, TaskRun] = {}
    edges: list[tuple[TaskRun, TaskRun]] = []
    for key in order:
        item = items[position[key]]
        try:
            eta = _when(run_at=item.get("run_at"), countdown=item.get("countdown"), now=now)
            run = _build_run(
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
                _check_chain(run.depth, limits)
        except ValidationError as error:
            raise ValidationError({f"tasks[{key}]": _field_messages(error)}) from error
        run.status = Status.WAITING if dependencies else Status.QUEUED
        edges += [(run, dependency) for dependency in dependencies]
        runs[key] = run
    from tasks.broker import insert_run_rows

    _admit_runs(tenant=tenant, count=len(runs), limits=limits)
    through = TaskRun.depends_on.through
    with _within_run_limit(tenant), transaction.atomic():
        insert_run_rows(list(runs.values()))
        through.objects.bulk_create([through(from_taskrun_id=run.pk, to_taskrun_id=dependency.pk)
                                     for run, dependency in edges], batch_size=5000)
        # A run waiting only on runs of this batch cannot find them ended; one waiting on an existing run may.
        _after_commit_dispatch(runs.values(), check_waiting=[
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


def _after_commit_dispatch(runs: Iterable[TaskRun], *, check_waiting: list = ()) -> None:
    """Once committed: enqueue the queued runs, and settle the waiting ones whose dependencies may have ended."""
    queued = [(run.pk, run.run_at, run.priority, run.timeout, run.tenant_id) for run in runs
              if run.status == Status.QUEUED]
    waiting = list(check_waiting)

    def dispatch():
        for run_id, eta, priority, timeout, tenant_id in queued:
            _enqueue(run_id, eta=eta, priority=priority, timeout=timeout, tenant_id=tenant_id)
        if waiting:
            dependents_settle(waiting=waiting)

    transaction.on_commit(dispatch)


def _orm_broker():
    from tasks.broker import PriorityORMBroker, get_task_broker

    broker = get_task_broker()
    return broker if isinstance(broker, PriorityORMBroker) else None


def _enqueue(run_id, *, eta: dt.datetime | None, priority: int, timeout: int, tenant_id: int | None = None,
             insert_run: TaskRun | None = None) -> None:
    """Hand a run to the broker. Only after commit, so a worker never reads an uncommitted row.

    With `insert_run` (ORM broker, no open transaction) the run row is inserted by the same statement.
    """
    from django_q.signals import pre_enqueue
    from django_q.signing import SignedPackage

    from tasks.broker import RUN_FUNC, TENANT_KEY, RunInsertingBroker, get_task_broker

    kwargs = {"_priority": int(priority), "_lease": int(timeout) + conf.lease_grace()}
    if eta is not None and eta > timezone.now():
        kwargs["_eta"] = eta.timestamp()
    broker = get_task_broker()
    if insert_run is not None:
        broker = RunInsertingBroker(broker, insert_run, priority=kwargs["_priority"], eta=kwargs.get("_eta"),
                                    lease=kwargs["_lease"])
    # The package django-q2's async_task builds for these options, built here: async_task spends half its
    # time (a humanised uuid, its option loop, log lines formatted whatever the level) on what a run has.
    task = {
        "id": uuid.uuid4().hex, "name": f"run {run_id}", "func": RUN_FUNC, "args": (str(run_id),),
        "timeout": int(timeout), "ack_failure": True, "save": False, "sync": False, "kwargs": kwargs,
        "started": timezone.now(), TENANT_KEY: int(tenant_id or 0),  # whose turn it is, for the broker
    }
    pre_enqueue.send(sender="django_q", task=task)
    broker.enqueue(SignedPackage.dumps(task))


# ---------------------------------------------------------------- execute

def backoff_delay(*, run: TaskRun, failed_attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with a cap, shortened by up to `backoff_jitter` of itself at random."""
    nominal = min(run.backoff_cap, run.backoff_base * (2 ** max(failed_attempt - 1, 0)))
    jitter = (rng or random).uniform(0, run.backoff_jitter) if run.backoff_jitter else 0.0
    return nominal * (1.0 - jitter)


def _claim(run_id) -> tuple[TaskRun | None, TaskAttempt | None, str]:
    """Take the run for this worker, or say why not. One row lock decides between duplicate deliveries."""
    now = timezone.now()
    with transaction.atomic():
        run = TaskRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            return None, None, "missing"
        if run.status in TERMINAL or run.status == Status.WAITING:
            return run, None, "not runnable"
        if run.status in LEASED:
            if run.lease_until and run.lease_until > now:
                # Another worker holds it (a redelivery raced a slow start): look again when its lease ends.
                transaction.on_commit(lambda: _enqueue(run.pk, eta=run.lease_until + dt.timedelta(seconds=1),
                                                       priority=run.priority, timeout=run.timeout,
                                                       tenant_id=run.tenant_id))
                return run, None, "deferred"
            # The previous attempt's worker died (SIGKILL, OOM, the guard's kill of a task stuck in C code).
            _record_lost_attempt(run, now=now)
            run.lost_attempts += 1
            if run.lost_attempts >= conf.MAX_LOST_ATTEMPTS:
                _finish(run, status=Status.FAILED, now=now,
                        error=f"The worker died {run.lost_attempts} times running this task; given up.")
                return run, None, "given up"
        if run.cancel_requested:
            _finish(run, status=Status.CANCELLED, now=now, error="Cancelled before it started.")
            return run, None, "cancelled"
        if run.status == Status.RETRYING and run.next_attempt_at and run.next_attempt_at > now + EARLY_TOLERANCE:
            # An older package of this run (redelivered after a hard timeout) came before the retry's own
            # package is due: look again when it is due, never start the retry before its backoff.
            due = run.next_attempt_at
            transaction.on_commit(lambda: _enqueue(run.pk, eta=due, priority=run.priority, timeout=run.timeout,
                                                   tenant_id=run.tenant_id))
            return run, None, "not due"
        run.attempts += 1
        run.status = Status.RUNNING
        run.started_at = run.started_at or now
        run.lease_until = now + dt.timedelta(seconds=run.timeout + conf.lease_grace())
        run.worker_pid = os.getpid()
        run.next_attempt_at = None
        run.save(update_fields=["attempts", "lost_attempts", "status", "started_at", "lease_until", "worker_pid",
                                "next_attempt_at", "updated_at"])
        attempt = TaskAttempt(run=run, number=run.attempts, worker_pid=run.worker_pid, started_at=now,
                              schema_name=getattr(connection, "schema_name", "public"))
    return run, attempt, "claimed"


def _record_lost_attempt(run: TaskRun, *, now) -> None:
    """Write the row of the attempt whose worker died: attempt rows are written when an attempt ends."""
    if not run.attempts:
        return
    error = "The worker died during this attempt; its package was delivered again."
    # Rows written at the start of an attempt (before tasks 0002) are closed in place.
    if TaskAttempt.objects.filter(run=run, outcome=TaskAttempt.Outcome.RUNNING).update(
            outcome=TaskAttempt.Outcome.LOST, finished_at=now, error=error):
        return
    started = (run.lease_until - dt.timedelta(seconds=run.timeout + conf.lease_grace())) if run.lease_until else now
    TaskAttempt.objects.bulk_create(
        [TaskAttempt(run=run, number=run.attempts, outcome=TaskAttempt.Outcome.LOST, worker_pid=run.worker_pid,
                     started_at=started, finished_at=now, error=error)],
        ignore_conflicts=True,  # the attempt was closed already (a watchdog recorded its timeout)
    )


def _finish(run: TaskRun, *, status: str, now, error: str = "", tb: str = "", result=None,
            also: Iterable[str] = ()) -> None:
    """Record a terminal status (and the fields named in `also`); after commit, move the runs waiting on this one."""
    run.status = status
    run.finished_at = now
    run.lease_until = None
    run.error = mask_text(error)[:10000]
    run.traceback = mask_text(tb)[:20000]
    fields = ["status", "finished_at", "lease_until", "error", "traceback", "updated_at", *also]
    if status == Status.SUCCEEDED:
        run.result, run.progress = result, 1.0
        fields += ["result", "progress"]
    # Otherwise the progress stays as last reported (the run object may be a partial one from the claim).
    run.save(update_fields=fields)
    run_id = run.pk
    transaction.on_commit(lambda: _release_dependents(run_id))


def _json_safe(value):
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return repr(value)


_FAST_CLAIM = """
UPDATE {run} SET status = 'running', attempts = attempts + 1, started_at = COALESCE(started_at, %(now)s),
    lease_until = %(now)s + make_interval(secs => timeout + %(grace)s), worker_pid = %(pid)s,
    next_attempt_at = NULL, updated_at = %(now)s
WHERE id = %(id)s AND status IN ('queued', 'retrying') AND NOT cancel_requested
    AND (next_attempt_at IS NULL OR next_attempt_at <= %(due_by)s)
RETURNING {claimed_columns}
"""
# A claim made by the dequeue whose package then waited for a worker: still ours? Renew its lease (and the
# package's), record this worker, and say whether a cancel came meanwhile. Unless one did, the task starts
# now: the run is running, and its start is written if no earlier attempt wrote it.
_RENEW_CLAIM = """
WITH renewed AS (
    UPDATE {run} SET lease_until = now() + make_interval(secs => timeout + %(grace)s), worker_pid = %(pid)s,
        status = CASE WHEN cancel_requested THEN status ELSE 'running' END,
        started_at = CASE WHEN cancel_requested THEN started_at ELSE COALESCE(started_at, now()) END,
        updated_at = now()
    WHERE id = %(id)s AND status = 'claimed' AND attempts = %(number)s
    RETURNING cancel_requested
), package AS (
    UPDATE {queue} SET available_at = now() + make_interval(secs => lease_seconds)
    WHERE id = %(ack_id)s AND EXISTS (SELECT 1 FROM renewed)
)
SELECT cancel_requested, now() FROM renewed
"""
# The task of a run the dequeue claimed has been running a moment (the watchdog thread says so, or its first
# progress report): the run is running now, started when its function started. Never after its outcome.
_MARK_STARTED = """
UPDATE {run} SET status = 'running', started_at = COALESCE(started_at, %(started)s), worker_pid = %(pid)s,
    updated_at = now()
WHERE id = %(id)s AND status = 'claimed' AND attempts = %(number)s
"""
_MARK_STARTED_TYPES = {"started": "timestamptz", "pid": "integer", "id": "uuid", "number": "integer"}
# What the worker needs of a claimed run, in the model's field order (TaskRun.from_db takes them so).
# The dequeue's claim (courtside_claim_run, migration tasks 0004) returns the same names as jsonb keys.
_CLAIMED = ("id", "name", "arguments", "schema_name", "priority", "status", "attempts", "timeout", "tenant_id")

_SUCCESS_TYPES = {"now": "timestamptz", "id": "uuid", "number": "integer", "pid": "integer",
                  "started": "timestamptz", "ack_id": "bigint", "result": "jsonb"}
_FAST_SUCCESS = """
WITH finished AS (
    UPDATE {run} SET status = 'succeeded', finished_at = %(now)s, lease_until = NULL, error = '', traceback = '',
        result = %(result)s, progress = 1, worker_pid = %(pid)s, started_at = COALESCE(started_at, %(started)s),
        updated_at = now()
    WHERE id = %(id)s AND status IN ('claimed', 'running') AND attempts = %(number)s
    RETURNING id
), closed AS (
    INSERT INTO {attempt} (run_id, number, outcome, worker_pid, schema_name, started_at, finished_at, error)
    SELECT id, %(number)s, 'succeeded', %(pid)s, 'public', %(started)s, %(now)s, '' FROM finished
    ON CONFLICT DO NOTHING
), acknowledged AS (
    DELETE FROM {queue} WHERE id = %(ack_id)s
)
SELECT EXISTS (SELECT 1 FROM finished), EXISTS (SELECT 1 FROM {edges} WHERE {to_column} = %(id)s)
"""


@functools.cache
def _sql(template: str) -> str:
    from tasks.broker import public_table
    from tasks.models import QueueMessage

    through = TaskRun.depends_on.through
    return template.format(run=public_table(TaskRun), attempt=public_table(TaskAttempt), edges=public_table(through),
                           queue=public_table(QueueMessage), to_column=through._meta.get_field("to_taskrun").column,
                           claimed_columns=", ".join(claimed_attnames()))


@functools.cache
def claimed_attnames() -> list[str]:
    return [f.attname for f in TaskRun._meta.concrete_fields if f.attname in _CLAIMED]


class Delivery:
    """The package this cluster worker runs now: its run's claim, and the success its monitor is to record.

    Set and read by the django-q2 signal receivers in tasks.signals.

    The claim: on the ORM broker the dequeue claims the run in the statement
    that takes its package (tasks.broker.ClaimedMessage), so the worker starts
    the task without a statement of its own. A package that waited for a free
    worker longer than fresh_claim_seconds() renews its claim first (and sees
    a cancel that came meanwhile).

    The success: inside a cluster worker it is not written by the worker.
    run_execute leaves it here, the worker's post_execute_in_worker hands it to
    the cluster's monitor with the task's result package, and the monitor
    writes it (post_execute) together with the ORM package's acknowledgement,
    in one statement. Per task the cluster then makes the round trips plain
    django-q2 makes: the pusher's dequeue and the monitor's acknowledgement.

    A crash of the monitor before it wrote the success leaves the run `running`
    with its package unacknowledged: the package comes back after its lease,
    the claim records the attempt as lost and the task runs again (side effects
    that must happen once use effect_once). The relaxed commit of the success is
    safe for the same reason: it loses the success and the acknowledgement
    together.
    """

    run_id: str | None = None  # the run of the package being executed (tasks.runner.execute), else None
    ack_id: int | None = None
    claim: dict | None = None
    pending_success: dict | None = None

    @classmethod
    def begin(cls, *, ack_id, run_id=None) -> None:
        from tasks.broker import PriorityORMBroker, get_task_broker

        ours = isinstance(ack_id, int) and isinstance(get_task_broker(), PriorityORMBroker)
        cls.run_id = None if run_id is None else str(run_id)
        cls.ack_id, cls.pending_success = (int(ack_id) if ours else None), None
        cls.claim = getattr(ack_id, "claim", None) if ours else None

    @staticmethod
    def fresh_claim_seconds() -> float:
        """How long a dequeue's claim may wait for a worker and still cover the whole attempt.

        Its lease is the timeout plus the lease grace from the dequeue; the
        attempt may last the timeout plus 3 s (django-q2's guard kills the
        worker then). 1 s with the default grace of 10 s; 0 (always renew) when
        the grace leaves no room.
        """
        return max(0.0, min(1.0, (conf.lease_grace() - 3) / 2))

    @classmethod
    def take_claim(cls, run_id) -> dict | None:
        """The dequeue's claim of this run, once."""
        claim, cls.claim = cls.claim, None
        if claim is None or claim["values"]["id"] != str(run_id):
            return None
        return claim

    @classmethod
    def defers(cls, run_id) -> bool:
        """Whether this run's success goes to the monitor: it is the run of the package being executed."""
        return cls.run_id is not None and cls.run_id == str(run_id) and cls.pending_success is None

    @classmethod
    def end(cls) -> dict | None:
        """The success the monitor must record (with the acknowledgement), or None."""
        pending = cls.pending_success
        if pending is not None:
            pending["ack_id"] = cls.ack_id
        cls.run_id, cls.ack_id, cls.claim, cls.pending_success = None, None, None, None
        return pending


def _run_from_claim(values) -> TaskRun:
    """A claimed run from the claim's columns (a row, in claimed_attnames() order, or a dict by name)."""
    names = claimed_attnames()
    if isinstance(values, dict):  # the dequeue's claim, through JSON
        values = [uuid.UUID(values["id"]) if name == "id" else values[name] for name in names]
    values = list(values)
    arguments_at = names.index("arguments")
    if isinstance(values[arguments_at], str):  # Django's psycopg setup hands jsonb back as text
        values[arguments_at] = json.loads(values[arguments_at])
    # As Django builds a row it read (3x cheaper than TaskRun(**...)); other fields are deferred, so
    # reading one loads it rather than giving a default. A later save(update_fields=...) UPDATEs the row.
    return TaskRun.from_db("default", names, values)


def _take_dequeue_claim(claim: dict) -> tuple[TaskRun | None, TaskAttempt | None, str]:
    """Start from the claim the dequeue made; renew it first if its package waited for a worker."""
    from core.db import soft_write

    run = _run_from_claim(claim["values"])
    run.worker_pid = os.getpid()
    started = None  # the run stays `claimed` (queued) until its function starts: run_execute notes when
    if time.time() - claim["delivered_at"] > Delivery.fresh_claim_seconds():
        row = soft_write(_sql(_RENEW_CLAIM), {"grace": conf.lease_grace(), "pid": run.worker_pid, "id": str(run.pk),
                                              "number": run.attempts, "ack_id": Delivery.ack_id},
                         prepared={"grace": "integer", "pid": "integer", "id": "uuid", "number": "integer",
                                   "ack_id": "bigint"})
        if row is None:
            return run, None, "superseded"  # the lease ran out while waiting and another delivery took it over
        cancel_requested, started = row
        if cancel_requested:
            with transaction.atomic():
                locked = TaskRun.objects.select_for_update().get(pk=run.pk)
                if locked.status == Status.CLAIMED and locked.attempts == run.attempts:
                    locked.attempts -= 1  # this attempt never started
                    _finish(locked, status=Status.CANCELLED, now=timezone.now(), error="Cancelled before it started.",
                            also=["attempts"])
            return run, None, "cancelled"
        run.status = Status.RUNNING
    attempt = TaskAttempt(run_id=run.pk, number=run.attempts, started_at=started, worker_pid=run.worker_pid,
                          schema_name="public")
    return run, attempt, "claimed"


def _fast_claim(run_id) -> tuple[TaskRun, TaskAttempt] | None:
    """The common case in one statement: a queued run, not cancelled, becomes running with a new attempt."""
    from core.db import soft_write

    now = timezone.now()
    # Relaxed commit: a server crash that loses this claim loses everything after it too (one WAL
    # stream), the success and its acknowledgement included, so the package is delivered and claimed again.
    row = soft_write(_sql(_FAST_CLAIM), {"now": now, "grace": conf.lease_grace(), "pid": os.getpid(),
                                         "id": str(run_id), "due_by": now + EARLY_TOLERANCE},
                     prepared={"now": "timestamptz", "grace": "integer", "pid": "integer", "id": "uuid",
                               "due_by": "timestamptz"})
    if row is None:
        return None
    run = _run_from_claim(row)
    # The attempt's row is written when it ends (one INSERT instead of an INSERT now and an UPDATE then).
    attempt = TaskAttempt(run_id=run.pk, number=run.attempts, started_at=now, worker_pid=os.getpid(),
                          schema_name="public")
    return run, attempt


def _success(run: TaskRun, attempt: TaskAttempt, value) -> dict:
    """What recording a success needs, as plain values (it may travel to the cluster's monitor)."""
    return {"run_id": str(run.pk), "attempt": attempt.number, "worker_pid": attempt.worker_pid,
            "started_at": attempt.started_at, "finished_at": timezone.now(), "result": _json_safe(value)}


def record_success(*, run_id: str, attempt: int, worker_pid: int | None, started_at, finished_at, result,
                   ack_id: int | None = None) -> bool:
    """Mark the attempt succeeded, write its row and delete its ORM package, in one statement.

    False when the attempt was closed meanwhile (its watchdog recorded a timeout): that record stands.
    """
    from psycopg.types.json import Jsonb

    from core.db import soft_write

    # Relaxed commit: this statement also acknowledges the ORM package, so a crash loses both or
    # neither; otherwise the next synchronous commit on the server flushes it (one WAL stream).
    recorded, has_dependents = soft_write(_sql(_FAST_SUCCESS), {
        "now": finished_at, "id": run_id, "number": attempt, "pid": worker_pid, "started": started_at,
        "ack_id": ack_id, "result": None if result is None else Jsonb(result),
    }, prepared=_SUCCESS_TYPES)
    if recorded and has_dependents:
        transaction.on_commit(lambda: _release_dependents(run_id))
    return recorded


def run_mark_started(*, run_id, attempt: int, started_at: dt.datetime, worker_pid: int) -> None:
    """A claimed run's task has started (the worker's watchdog thread calls this once it has run a moment)."""
    from core.db import soft_write

    # Relaxed commit: a lost mark only leaves the run reading `queued` until its outcome writes the start.
    soft_write(_sql(_MARK_STARTED), {"started": started_at, "pid": worker_pid, "id": str(run_id), "number": attempt},
               prepared=_MARK_STARTED_TYPES)


def run_execute(*, run_id) -> str:
    """Run one delivery of a task run in this process; what the cluster worker calls. Returns the outcome."""
    connection.set_schema_to_public()
    dequeue_claim = Delivery.take_claim(run_id)
    if dequeue_claim is not None:
        run, attempt, verdict = _take_dequeue_claim(dequeue_claim)
    elif (claimed := _fast_claim(run_id)) is not None:
        run, attempt, verdict = *claimed, "claimed"
    else:
        run, attempt, verdict = _claim(run_id)
    if attempt is None:
        logger.info("task run %s not run: %s", run_id, verdict)
        return verdict

    tenant = None
    if run.schema_name != "public":
        tenant = _tenant_for_schema(run.schema_name)
        if tenant is None:
            message = f"Tenant schema {run.schema_name!r} no longer exists: the task was not run (never in public)."
            attempt.started_at = attempt.started_at or timezone.now()
            with transaction.atomic():
                _close_attempt(attempt, TaskAttempt.Outcome.FAILED, message)
                _finish(run, status=Status.FAILED, now=timezone.now(), error=message)
            raise TenantMissing(message)

    spec = None
    try:
        spec = registry.get_spec(run.name)
    except ValidationError:
        pass
    # A run the dequeue claimed reads as queued until here: its attempt, and the run, start now. The start
    # is written once: by the watchdog thread if the task lasts (_MARK_STARTED), by its first progress
    # report, or else by its outcome, whichever comes first (the others keep it).
    not_marked = run.status == Status.CLAIMED
    attempt.started_at = attempt.started_at or timezone.now()
    context = TaskContext(run=run, attempt=attempt.number, tenant=tenant, started_at=attempt.started_at)
    timed_out_by_watchdog = False
    try:
        if spec is None:
            raise LookupError(f"Task {run.name!r} is not registered in this worker.")
        watchdog.arm(run=run, attempt=attempt, seconds=run.timeout, mark_started=not_marked)
        try:
            with tenant_context(tenant) if tenant is not None else nullcontext():
                value = spec.func(context, **run.arguments)
        finally:
            # The task is over: a SIGALRM or the watchdog now would hit our bookkeeping, not the task.
            signal.alarm(0)
            timed_out_by_watchdog = watchdog.disarm()
    except TaskCancelled:
        if timed_out_by_watchdog:
            return "timed out"
        with transaction.atomic():
            _close_attempt(attempt, TaskAttempt.Outcome.CANCELLED, "Cancelled while running.")
            TaskRun.objects.filter(pk=run.pk, started_at__isnull=True).update(started_at=attempt.started_at)
            _finish(run, status=Status.CANCELLED, now=timezone.now(), error="Cancelled while running.")
        return "cancelled"
    except TimeoutException as error:
        return _failed(run, attempt, TaskAttempt.Outcome.TIMED_OUT,
                       f"Timed out after {run.timeout} s ({error}).", traceback_module.format_exc())
    except Exception as error:  # the task's own failure: recorded, retried per its policy
        return _failed(run, attempt, TaskAttempt.Outcome.FAILED, f"{type(error).__name__}: {error}",
                       traceback_module.format_exc())
    finally:
        connection.set_schema_to_public()

    if timed_out_by_watchdog:
        return "timed out"  # recorded by the watchdog; a late success does not undo it
    success = _success(run, attempt, value)
    if Delivery.defers(run.pk):
        Delivery.pending_success = success  # the cluster's monitor records it (see Delivery)
    else:
        record_success(**success)
    return "succeeded"


def record_hard_timeout(*, run: TaskRun, attempt: TaskAttempt) -> str:
    """Record an attempt that outlived its timeout (called by the worker's watchdog thread)."""
    return _failed(
        run, attempt, TaskAttempt.Outcome.TIMED_OUT,
        f"Timed out after {run.timeout} s: the task did not stop at the timeout signal, so its worker is "
        "killed.", "",
    )


def _close_attempt(attempt: TaskAttempt, outcome: str, error: str, retry_delay: float | None = None) -> None:
    attempt.outcome = outcome
    attempt.finished_at = timezone.now()
    attempt.error = mask_text(error)[:10000]
    attempt.retry_delay = retry_delay
    if attempt._state.adding:
        attempt.save(force_insert=True)
    else:
        attempt.save(update_fields=["outcome", "finished_at", "error", "retry_delay"])


def _failed(run: TaskRun, attempt: TaskAttempt, outcome: str, error: str, tb: str) -> str:
    now = timezone.now()
    with transaction.atomic():
        run = TaskRun.objects.select_for_update().get(pk=run.pk)
        if run.status not in LEASED or run.attempts != attempt.number:
            # This attempt was closed meanwhile (its watchdog recorded a timeout): that record stands.
            return "superseded"
        run.started_at = run.started_at or attempt.started_at
        if run.cancel_requested:
            _close_attempt(attempt, outcome, error)
            _finish(run, status=Status.CANCELLED, now=now, error=f"Cancelled; the last attempt failed: {error}",
                    tb=tb, also=["started_at"])
            return "cancelled"
        retries_used = run.attempts - run.lost_attempts - 1
        if retries_used < run.max_retries:
            delay = backoff_delay(run=run, failed_attempt=retries_used + 1)
            _close_attempt(attempt, outcome, error, retry_delay=delay)
            run.status = Status.RETRYING
            run.next_attempt_at = now + dt.timedelta(seconds=delay)
            run.lease_until = None
            run.error, run.traceback = mask_text(error)[:10000], mask_text(tb)[:20000]
            run.worker_pid = attempt.worker_pid
            run.save(update_fields=["status", "next_attempt_at", "lease_until", "error", "traceback", "worker_pid",
                                    "started_at", "updated_at"])
            eta, run_id, priority, timeout, tenant_id = (run.next_attempt_at, run.pk, run.priority, run.timeout,
                                                         run.tenant_id)
            transaction.on_commit(lambda: _enqueue(run_id, eta=eta, priority=priority, timeout=timeout,
                                                   tenant_id=tenant_id))
            return "retrying"
        _close_attempt(attempt, outcome, error)
        run.worker_pid = attempt.worker_pid
        _finish(run, status=Status.FAILED, now=now, error=error, tb=tb, also=["worker_pid", "started_at"])
    return "failed"


# ---------------------------------------------------------------- dependencies

# The waiting runs a failed or cancelled dependency dooms, and everything waiting on them in turn, in one
# statement (a recursive CTE: a chain of any length, no recursion in Python). Rows are locked in id order,
# so two cascades that meet cannot deadlock; a run told to go on (run_if_dependency_fails) stops the cascade.
_CANCEL_DOOMED = """
WITH RECURSIVE candidates AS (
    SELECT e.from_taskrun_id AS id FROM {edges} e WHERE e.to_taskrun_id = ANY(%(ended)s::uuid[])
    UNION SELECT unnest(%(waiting)s::uuid[])
), doomed(id) AS (
    SELECT r.id FROM {run} r
    WHERE r.id IN (SELECT id FROM candidates) AND r.status = 'waiting' AND NOT r.run_if_dependency_fails
        AND EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                    WHERE e.from_taskrun_id = r.id AND d.status IN ('failed', 'cancelled'))
    UNION
    SELECT r.id FROM doomed JOIN {edges} e ON e.to_taskrun_id = doomed.id JOIN {run} r ON r.id = e.from_taskrun_id
    WHERE r.status = 'waiting' AND NOT r.run_if_dependency_fails
), locked AS (
    SELECT id FROM {run} WHERE id IN (SELECT id FROM doomed) AND status = 'waiting' ORDER BY id FOR UPDATE
)
UPDATE {run} AS r SET status = 'cancelled', cancel_requested = true, finished_at = now(),
    error = 'A dependency failed or was cancelled.', updated_at = now()
FROM locked WHERE r.id = locked.id
RETURNING r.id
"""
# The waiting runs among the dependents of runs that ended (or given) whose dependencies have all ended,
# none failed or cancelled unless the run goes on regardless: queued, and returned for the broker.
_QUEUE_READY = """
WITH candidates AS (
    SELECT e.from_taskrun_id AS id FROM {edges} e WHERE e.to_taskrun_id = ANY(%(ended)s::uuid[])
    UNION SELECT unnest(%(waiting)s::uuid[])
), ready AS (
    SELECT r.id FROM {run} r
    WHERE r.id IN (SELECT id FROM candidates) AND r.status = 'waiting'
        AND NOT EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                        WHERE e.from_taskrun_id = r.id AND d.status NOT IN ('succeeded', 'failed', 'cancelled'))
        AND (r.run_if_dependency_fails
             OR NOT EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                            WHERE e.from_taskrun_id = r.id AND d.status IN ('failed', 'cancelled')))
    ORDER BY r.id FOR UPDATE OF r
)
UPDATE {run} AS r SET status = 'queued', updated_at = now()
FROM ready WHERE r.id = ready.id
RETURNING r.id, r.run_at, r.priority, r.timeout, r.tenant_id
"""
# Waiting runs a lost release left behind: every dependency ended before the cutoff, or (for a run that
# does not go on regardless) one failed or was cancelled before it. Oldest first, a bounded sweep.
_STRANDED = """
SELECT r.id FROM {run} r
WHERE r.status = 'waiting' AND (
    NOT EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                WHERE e.from_taskrun_id = r.id
                    AND NOT (d.status IN ('succeeded', 'failed', 'cancelled')
                             AND COALESCE(d.finished_at, d.updated_at) < %(cutoff)s))
    OR (NOT r.run_if_dependency_fails
        AND EXISTS (SELECT 1 FROM {edges} e JOIN {run} d ON d.id = e.to_taskrun_id
                    WHERE e.from_taskrun_id = r.id AND d.status IN ('failed', 'cancelled')
                        AND COALESCE(d.finished_at, d.updated_at) < %(cutoff)s)))
ORDER BY r.created_at
LIMIT %(limit)s
"""


def dependents_settle(*, ended: Iterable = (), waiting: Iterable = ()) -> dict[str, int]:
    """Move what runs that `ended` (or the `waiting` runs given) leave decided, in one transaction.

    Waiting runs a failed or cancelled dependency dooms are cancelled with all that waits on them; those
    whose dependencies have all ended are queued and, once committed, enqueued. Two statements, whatever
    the length of the chains. Safe to repeat and to run twice at once: each row moves once.
    """
    ended = [str(run_id) for run_id in ended]
    waiting = [str(run_id) for run_id in waiting]
    if not ended and not waiting:
        return {"cancelled": 0, "queued": 0}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_sql(_CANCEL_DOOMED), {"ended": ended, "waiting": waiting})
        cancelled = [str(row[0]) for row in cursor.fetchall()]
        cursor.execute(_sql(_QUEUE_READY), {"ended": ended + cancelled, "waiting": waiting})
        queued = cursor.fetchall()

        def enqueue():
            for run_id, run_at, priority, timeout, tenant_id in queued:
                _enqueue(run_id, eta=run_at, priority=priority, timeout=timeout, tenant_id=tenant_id)

        if queued:
            transaction.on_commit(enqueue)
    if cancelled:
        logger.info("Cancelled %s waiting run(s) whose dependency failed or was cancelled.", len(cancelled))
    return {"cancelled": len(cancelled), "queued": len(queued)}


def _release_dependents(run_id) -> None:
    dependents_settle(ended=[run_id])


# ---------------------------------------------------------------- cancel, retry, progress

def task_cancel(*, run: TaskRun, cancelled_by: str = "") -> TaskRun:
    """Cancel for good (stored in the database, so a cluster restart does not undo it).

    A queued, delayed, retrying or waiting run is cancelled at once and never
    starts; a running one is flagged and stops at its next progress report.
    """
    now = timezone.now()
    with transaction.atomic():
        run = TaskRun.objects.select_for_update().get(pk=run.pk)
        if run.status in TERMINAL:
            raise ValidationError(f"This task run is already {run.get_status_display().lower()}.",
                                  code="already_finished")
        run.cancel_requested = True
        note = f"Cancelled by {cancelled_by}." if cancelled_by else "Cancelled."
        if run.status in LEASED:
            # A claimed run's package may already be with a worker that starts it without asking (see
            # Delivery.fresh_claim_seconds): like a running one it stops at its first progress report.
            run.progress_message = f"Cancel requested{' by ' + cancelled_by if cancelled_by else ''}."[:200]
            run.save(update_fields=["cancel_requested", "progress_message", "updated_at"])
        else:
            run.save(update_fields=["cancel_requested", "updated_at"])
            _finish(run, status=Status.CANCELLED, now=now, error=note)
    return run


def recover_stalled_runs(*, stalled_for: float = 60.0) -> dict[str, int]:
    """Hand runs whose package is gone to the broker again; the run's claim decides what happens next.

    - `running` past its lease by `stalled_for` seconds: its worker died and no
      delivery came back (the Redis broker has no receipts; a whole cluster
      died there). The claim records the lost attempt and runs it again.
    - `queued` or `retrying`, due for `stalled_for` seconds, while the broker
      holds no package at all: the packages were lost (a Redis restarted
      without persistence, a process that died between commit and enqueue).
    - `waiting` whose dependencies ended `stalled_for` seconds ago (or one of
      them failed), its release lost the same ways: cancelled or queued as
      the release would have (at most 10,000 a sweep; the next takes the rest).
    Duplicate packages are harmless: the run's row lock lets one through.
    Scheduled every minute on the cluster (migration 0003).
    """
    from django.db.models import F, Q
    from django.db.models.functions import Coalesce

    from tasks.broker import get_task_broker

    now = timezone.now()
    cutoff = now - dt.timedelta(seconds=stalled_for)
    recovered = {"running": 0, "queued": 0}
    for run in TaskRun.objects.filter(status__in=LEASED, lease_until__lt=cutoff).only(
            "pk", "priority", "timeout", "tenant_id"):
        _enqueue(run.pk, eta=None, priority=run.priority, timeout=run.timeout, tenant_id=run.tenant_id)
        recovered["running"] += 1
    broker = get_task_broker()
    waiting = sum(getattr(broker, size)() for size in ("queue_size", "delayed_size", "lock_size")
                  if hasattr(broker, size))
    if waiting == 0:
        due = (TaskRun.objects.filter(status__in=[Status.QUEUED, Status.RETRYING])
               .annotate(due_at=Coalesce(F("next_attempt_at"), F("run_at"), F("created_at")))
               .filter(Q(due_at__lt=cutoff)).only("pk", "priority", "timeout", "tenant_id"))
        for run in due:
            _enqueue(run.pk, eta=None, priority=run.priority, timeout=run.timeout, tenant_id=run.tenant_id)
            recovered["queued"] += 1
    with connection.cursor() as cursor:
        cursor.execute(_sql(_STRANDED), {"cutoff": cutoff, "limit": 10_000})
        stranded = [row[0] for row in cursor.fetchall()]
    if stranded:
        settled = dependents_settle(waiting=stranded)
        recovered["waiting"] = settled["cancelled"] + settled["queued"]  # the key only when some were
    if any(recovered.values()):
        logger.warning("Recovered stalled task runs: %s", recovered)
    return recovered


def task_retry(*, run: TaskRun, submitted_by: str = "", by_operator: bool = False) -> TaskRun:
    """Submit a failed or cancelled run again, as a new run that points back at it.

    By its tenant (its admin), within its plan: at most the plan's highest priority.
    """
    if run.status not in (Status.FAILED, Status.CANCELLED):
        raise ValidationError("Only a failed or cancelled run can be retried.", code="not_retryable")
    limits = _tenant_limits(run.tenant, by_operator)
    priority = run.priority if limits is None else min(run.priority, limits.max_priority)
    if run.schema_name != "public" and run.tenant is None:
        raise ValidationError("The tenant of this run no longer exists.", code="tenant_missing")
    new = _build_run(
        name=run.name, arguments=run.arguments, tenant=run.tenant, priority=priority, limits=limits,
        max_retries=run.max_retries, timeout=run.timeout, backoff_base=run.backoff_base,
        backoff_cap=run.backoff_cap, run_if_dependency_fails=run.run_if_dependency_fails,
        submitted_by=submitted_by, schedule=run.schedule, eta=None, retry_of=run,
    )
    _admit_runs(tenant=run.tenant, count=1, limits=limits)
    with _within_run_limit(run.tenant), transaction.atomic():
        new.status = Status.QUEUED
        new.save(force_insert=True)
        _after_commit_dispatch([new])
    return new


def progress_report(*, run_id, fraction: float, message: str = "", started_at: dt.datetime | None = None) -> None:
    """Store a running task's progress; raise TaskCancelled when a cancel was requested meanwhile.

    From inside the task (`started_at` given): a run the dequeue claimed is running from then on.
    """
    if not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
        raise ValueError("Progress must be a fraction between 0 and 1.")
    from core.db import raw_cursor
    from tasks.broker import public_table

    with raw_cursor() as cursor:
        cursor.execute(
            # The worker's pid too: a claim made by the dequeue does not know which worker takes it.
            f"UPDATE {public_table(TaskRun)} SET progress = %s, progress_message = %s, worker_pid = %s, "
            "status = CASE WHEN status = 'claimed' AND %s::timestamptz IS NOT NULL THEN 'running' ELSE status END, "
            "started_at = COALESCE(started_at, %s::timestamptz), updated_at = now() "
            "WHERE id = %s RETURNING cancel_requested",
            [float(fraction), (message or "")[:200], os.getpid(), started_at, started_at, str(run_id)],
        )
        row = cursor.fetchone()
    if row and row[0]:
        raise TaskCancelled(f"Task run {run_id} was cancelled.")


def effect_once(*, key: str, run: TaskRun | None = None, detail: dict | None = None) -> bool:
    """Record an idempotency key; True the first time, False when the effect already happened.

    Call it inside the same transaction as the side effect it guards.
    """
    try:
        with transaction.atomic():
            TaskEffect.objects.create(key=key, run=run, detail=detail or {})
    except IntegrityError:
        return False
    return True


class TaskContext:
    """What a task function receives first: its run, its tenant, progress and cancellation."""

    def __init__(self, *, run: TaskRun, attempt: int, tenant=None, started_at: dt.datetime | None = None):
        self.run = run
        self.run_id = run.pk
        self.attempt = attempt
        self.tenant = tenant
        self.idempotency_key = run.idempotency_key
        self.started_at = started_at or timezone.now()

    def progress(self, fraction: float, message: str = "") -> None:
        progress_report(run_id=self.run_id, fraction=fraction, message=message, started_at=self.started_at)

    def check_cancelled(self) -> None:
        if TaskRun.objects.filter(pk=self.run_id, cancel_requested=True).exists():
            raise TaskCancelled(f"Task run {self.run_id} was cancelled.")


# ---------------------------------------------------------------- schedules

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

    limits = _tenant_limits(tenant, by_operator)
    spec = registry.get_spec(task_name, for_tenant=limits is not None)
    priority = _parse_priority(priority)
    if limits is not None and priority is not None and priority > limits.max_priority:
        raise ValidationError({"priority": f"{limits.who} allows task priorities up to "
                                           f"{Priority(limits.max_priority).name}."}, code="priority_not_allowed")
    arguments, _text = _bounded_arguments(arguments)
    arguments = spec.validate(arguments)
    _check_tenant_scope(spec, tenant)
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
        schedule.priority = _parse_priority(priority)
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
    limits = _tenant_limits(schedule.tenant, False)
    priority = schedule.priority if limits is None else min(schedule.priority, limits.max_priority)
    return task_submit(
        name=schedule.task_name, arguments=schedule.arguments, tenant=schedule.tenant, priority=priority,
        submitted_by=f"schedule {schedule.name}", schedule=schedule,
    )
