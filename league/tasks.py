"""The league app's tasks, registered with the task layer: they run inside the tenant's schema.

Each takes the TaskContext first, then its validated arguments.
"""

from __future__ import annotations

from league import modelling
from tasks.registry import TENANT, register_task

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


@register_task(
    "league.train_points_model", scope=TENANT, timeout=240, max_retries=1,
    schema={"type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 100},
                           "window_games": {"type": "integer", "minimum": 1, "maximum": 82}}},
)
def train_points_model(ctx, name: str, window_games: int = 10):
    """Fit next-game points = a + b·(average of the last N games) + c·minutes; save it as a StatModel."""
    return modelling.points_model_train(name=name, window_games=window_games, task_run=str(ctx.run_id),
                                        progress=ctx.progress)
