"""The allow-listed tasks of the product, and a few diagnostic ones for operators and tests.

Each takes the TaskContext first, then its validated arguments; tenant tasks
already run inside their tenant's schema when called.
"""

from __future__ import annotations

import csv
import datetime as dt
import statistics
import time
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_q.exceptions import TimeoutException

from tasks import actions
from tasks.models import Priority, TaskEffect
from tasks.registry import ANY, OPERATOR, TENANT, register_task

SEASON = {"type": "string", "pattern": r"^\d{4}-\d{2}$"}


@register_task(
    "league.recompute_season_averages", scope=TENANT, timeout=120, max_retries=2,
    schema={"type": "object", "properties": {"season": SEASON, "limit": {"type": "integer", "minimum": 1,
                                                                         "maximum": 500}},
            "additionalProperties": False},
)
def recompute_season_averages(ctx, season: str | None = None, limit: int = 20):
    """Recompute every player's per-game averages for a season (the tenant's data); return the leaders."""
    from django.db.models import Avg, Count, F, FloatField

    from league.models import Game, PlayerGameStat

    if season is None:
        season = Game.objects.order_by("-season").values_list("season", flat=True).first()
    if season is None:
        return {"season": None, "players": 0, "leaders": []}
    ctx.progress(0.1, f"Averaging {season}")
    rows = list(
        PlayerGameStat.objects.filter(game__season=season)
        .values("player_id", name=F("player__full_name"))
        .annotate(games=Count("id"), ppg=Avg("points", output_field=FloatField()),
                  rpg=Avg(F("offensive_rebounds") + F("defensive_rebounds"), output_field=FloatField()),
                  apg=Avg("assists", output_field=FloatField()))
        .order_by("-ppg")
    )
    ctx.progress(0.9, f"{len(rows)} players averaged")
    leaders = [{"player": r["name"], "games": r["games"], "ppg": round(r["ppg"], 1), "rpg": round(r["rpg"], 1),
                "apg": round(r["apg"], 1)} for r in rows[:limit]]
    return {"season": season, "players": len(rows), "leaders": leaders}


def _least_squares(xs: list[list[float]], ys: list[float]) -> list[float]:
    """Ordinary least squares by the normal equations, solved with Gaussian elimination (no numpy needed)."""
    n = len(xs[0])
    a = [[sum(x[i] * x[j] for x in xs) for j in range(n)] for i in range(n)]
    b = [sum(x[i] * y for x, y in zip(xs, ys, strict=True)) for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(a[r][col]))
        if abs(a[pivot][col]) < 1e-12:
            raise ValueError("The stat lines do not determine a model (singular system).")
        a[col], a[pivot], b[col], b[pivot] = a[pivot], a[col], b[pivot], b[col]
        for row in range(col + 1, n):
            factor = a[row][col] / a[col][col]
            for k in range(col, n):
                a[row][k] -= factor * a[col][k]
            b[row] -= factor * b[col]
    coef = [0.0] * n
    for row in range(n - 1, -1, -1):
        coef[row] = (b[row] - sum(a[row][k] * coef[k] for k in range(row + 1, n))) / a[row][row]
    return coef


@register_task(
    "league.train_points_model", scope=TENANT, timeout=240, max_retries=1,
    schema={"type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                           "window_games": {"type": "integer", "minimum": 1, "maximum": 82}}},
)
def train_points_model(ctx, name: str, window_games: int = 10):
    """Fit next-game points = a + b·(average of the last N games) + c·minutes; save it as a StatModel."""
    from league.models import PlayerGameStat, StatModel
    from league.services import stat_model_create

    lines = list(PlayerGameStat.objects.order_by("player_id", "game__date", "game_id")
                 .values_list("player_id", "points", "minutes"))
    ctx.progress(0.2, f"{len(lines)} stat lines read")
    xs, ys, history, previous = [], [], [], None
    for player_id, points, minutes in lines:
        if player_id != previous:
            history, previous = [], player_id
        if history:
            window = history[-window_games:]
            xs.append([1.0, statistics.fmean(p for p, _ in window), float(minutes)])
            ys.append(float(points))
        history.append((points, float(minutes)))
    if len(xs) < 3:
        raise ValueError("Not enough stat lines to train on: load or generate a season first.")
    ctx.progress(0.6, f"Fitting on {len(xs)} samples")
    coef = _least_squares(xs, ys)
    predictions = [sum(c * x for c, x in zip(coef, row, strict=True)) for row in xs]
    mae = statistics.fmean(abs(p - y) for p, y in zip(predictions, ys, strict=True))
    metrics = {"intercept": coef[0], "recent_average": coef[1], "minutes": coef[2], "mae": mae,
               "samples": len(xs), "task_run": str(ctx.run_id)}
    with transaction.atomic():
        model = StatModel.objects.filter(name=name).first() or stat_model_create(
            name=name, target="points", window_games=window_games
        )
        model.metrics, model.status, model.trained_at = metrics, StatModel.Status.READY, timezone.now()
        model.window_games = window_games
        model.save(update_fields=["metrics", "status", "trained_at", "window_games"])
    ctx.progress(1.0, "Saved")
    return {"model": model.pk, "name": model.name, **metrics}


@register_task("tenants.export_usage_report", scope=ANY, timeout=120,
               schema={"type": "object", "additionalProperties": False,
                       "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 366}}})
def export_usage_report(ctx, days: int = 30):
    """Write a CSV of daily usage (storage, users, saved models): one tenant's, or every tenant's for the operator.

    A report longer than reports.max_rows (the tenant's view, or the operator's) is refused
    whole before anything is written: a report cut short would read as complete.
    """
    import os
    import tempfile

    from configuration import keys
    from tenants import quotas
    from tenants.models import UsageDay

    since = timezone.now().date() - dt.timedelta(days=days)
    rows = UsageDay.objects.filter(date__gte=since).select_related("tenant").order_by("tenant__schema_name", "date")
    if ctx.tenant is not None:
        rows = rows.filter(tenant=ctx.tenant)
    schema = ctx.tenant.schema_name if ctx.tenant is not None else "public"
    cap, total = keys.reports_max_rows(tenant=schema), rows.count()
    if total > cap:
        raise ValueError(f"The usage report of the last {days} days has {total} rows, more than "
                         f"reports.max_rows ({cap}): ask for fewer days, or raise reports.max_rows.")
    # The path carries the schema, so one tenant's report never lands beside another's.
    directory = Path(settings.MEDIA_ROOT) / schema / "reports"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"usage-{timezone.now():%Y%m%dT%H%M%S}-{str(ctx.run_id)[:8]}.csv"
    count = 0
    # Written beside the target and renamed: a reader never sees half a report, a failure leaves none.
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", newline="") as file:
            writer = csv.writer(file)
            columns = quotas.measured_usage_fields()  # storage_bytes, then each row-count quota
            writer.writerow(["tenant", "date", *columns])
            for row in rows[:cap]:
                writer.writerow([row.tenant.schema_name, row.date.isoformat(),
                                 *(getattr(row, column, "") for column in columns)])
                count += 1
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return {"path": str(path.relative_to(settings.MEDIA_ROOT)), "rows": count}


@register_task("tenants.refresh_storage_usage", scope=ANY, timeout=120, priority=Priority.LOW)
def refresh_storage_usage(ctx):
    """Measure storage of one tenant's schema, or of every tenant for the operator."""
    from tenants.services import tenant_usage_refresh

    tenants = [ctx.tenant] if ctx.tenant is not None else None
    # Usage rows and the tenant table are public tables, reachable from a tenant's search_path too.
    measured = tenant_usage_refresh(tenants=tenants)
    return {"tenants_measured": measured}


# ------------------------------------------------------------ diagnostics

@register_task("system.noop", scope=ANY, timeout=30)
def noop(ctx):
    """Do nothing: measures the queue itself."""
    return None


@register_task("system.whoami", scope=ANY, timeout=30)
def whoami(ctx):
    """Report the schema and worker process this task ran in."""
    import os

    return {"schema": connection.schema_name, "pid": os.getpid(), "attempt": ctx.attempt}


@register_task(
    "system.sleep", scope=ANY, timeout=60,
    schema={"type": "object", "additionalProperties": False,
            "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 3600},
                           "steps": {"type": "integer", "minimum": 1, "maximum": 1000},
                           "ignore_timeout": {"type": "boolean"}}},
)
def sleep(ctx, seconds: float = 1.0, steps: int = 10, ignore_timeout: bool = False):
    """Sleep in steps, reporting progress at each (and so stopping soon after a cancel).

    With ignore_timeout it swallows the timeout signal, as code with a bare
    `except` does: what the worker's watchdog and django-q2's guard are for.
    """
    for step in range(steps):
        deadline = time.monotonic() + seconds / steps
        while (left := deadline - time.monotonic()) > 0:
            try:
                time.sleep(left)
            except TimeoutException:
                if not ignore_timeout:
                    raise
        ctx.progress((step + 1) / steps, f"step {step + 1} of {steps}")
    return {"slept": seconds}


@register_task(
    "system.fail", scope=ANY, timeout=30,
    schema={"type": "object", "additionalProperties": False,
            "properties": {"message": {"type": "string", "maxLength": 200},
                           "succeed_on_attempt": {"type": "integer", "minimum": 1}}},
)
def fail(ctx, message: str = "Failed on purpose.", succeed_on_attempt: int | None = None):
    """Raise an error (until a given attempt): exercises retries and backoff."""
    if succeed_on_attempt is not None and ctx.attempt >= succeed_on_attempt:
        return {"succeeded_on_attempt": ctx.attempt}
    raise RuntimeError(message)


@register_task(
    "system.tally", scope=ANY, timeout=30,
    schema={"type": "object", "additionalProperties": False,
            "properties": {"seconds": {"type": "number", "minimum": 0, "maximum": 60},
                           "label": {"type": "string", "maxLength": 100}}},
)
def tally(ctx, seconds: float = 0.0, label: str = ""):
    """Take a while, then record one side effect under the run's idempotency key (exactly once)."""
    steps = 5
    for step in range(steps):
        time.sleep(seconds / steps)
        ctx.progress((step + 1) / steps)
    with transaction.atomic():
        created = actions.effect_once(key=ctx.idempotency_key, run=ctx.run,
                                       detail={"label": label, "attempt": ctx.attempt})
    return {"recorded": created, "effects": TaskEffect.objects.filter(key=ctx.idempotency_key).count()}


@register_task("system.fire_schedules", scope=OPERATOR, timeout=60,
               schema={"type": "object", "additionalProperties": False,
                       "properties": {"schedule_id": {"type": "integer", "minimum": 1}},
                       "required": ["schedule_id"]})
def fire_schedule_now(ctx, schedule_id: int):
    """Fire one schedule now, outside its timetable."""
    run = actions.schedule_fire(schedule_id=schedule_id)
    return {"run": str(run.pk) if run else None}
