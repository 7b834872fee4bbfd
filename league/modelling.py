"""League modelling: a points model fitted on a tenant's stat lines (run as the league.train_points_model task)."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from league.models import PlayerGameStat, StatModel
from league.services import stat_model_create


def least_squares(xs: list[list[float]], ys: list[float]) -> list[float]:
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


def points_model_train(*, name: str, window_games: int = 10, task_run: str = "",
                       progress: Callable[[float, str], None] = lambda fraction, message="": None) -> dict:
    """Fit next-game points = a + b·(average of the last N games) + c·minutes; save it as the StatModel `name`."""
    lines = list(PlayerGameStat.objects.order_by("player_id", "game__date", "game_id")
                 .values_list("player_id", "points", "minutes"))
    progress(0.2, f"{len(lines)} stat lines read")
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
    progress(0.6, f"Fitting on {len(xs)} samples")
    coef = least_squares(xs, ys)
    predictions = [sum(c * x for c, x in zip(coef, row, strict=True)) for row in xs]
    mae = statistics.fmean(abs(p - y) for p, y in zip(predictions, ys, strict=True))
    metrics = {"intercept": coef[0], "recent_average": coef[1], "minutes": coef[2], "mae": mae,
               "samples": len(xs), "task_run": task_run}
    with transaction.atomic():
        model = StatModel.objects.filter(name=name).first() or stat_model_create(
            name=name, target="points", window_games=window_games
        )
        model.metrics, model.status, model.trained_at = metrics, StatModel.Status.READY, timezone.now()
        model.window_games = window_games
        model.save(update_fields=["metrics", "status", "trained_at", "window_games"])
    progress(1.0, "Saved")
    return {"model": model.pk, "name": model.name, **metrics}


