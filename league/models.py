"""A tenant's NBA data. Lives in each tenant's schema."""

from django.db import models
from django.db.models import F, Q


class Team(models.Model):
    """An NBA franchise."""

    nba_id = models.PositiveIntegerField("NBA id", unique=True, help_text="Id used by stats.nba.com.")
    abbreviation = models.CharField("abbreviation", max_length=3, unique=True)
    full_name = models.CharField("full name", max_length=64)
    nickname = models.CharField("nickname", max_length=32)
    city = models.CharField("city", max_length=32)
    state = models.CharField("state", max_length=32, blank=True)
    year_founded = models.PositiveSmallIntegerField("year founded")

    class Meta:
        ordering = ["full_name"]

    def __str__(self) -> str:
        return self.full_name


class Player(models.Model):
    """A player, active or retired; `team` is the current roster assignment."""

    nba_id = models.PositiveIntegerField("NBA id", unique=True)
    first_name = models.CharField("first name", max_length=64, blank=True)
    last_name = models.CharField("last name", max_length=64)
    full_name = models.CharField("full name", max_length=128, db_index=True)
    is_active = models.BooleanField("active", default=False, help_text="On an NBA roster this season.")
    team = models.ForeignKey(
        Team, verbose_name="team", related_name="players", null=True, blank=True,
        on_delete=models.SET_NULL,
    )
    team_generated = models.BooleanField(
        "generated team", default=False,
        help_text="The team is a demo roster place drawn by generate_season, not one the reference data gives.",
    )

    class Meta:
        ordering = ["last_name", "first_name"]

    def __str__(self) -> str:
        return self.full_name


class Game(models.Model):
    """One game between two teams on a date of a season."""

    season = models.CharField("season", max_length=7, help_text="Like 2025-26.")
    date = models.DateField("date")
    home_team = models.ForeignKey(Team, related_name="home_games", on_delete=models.PROTECT)
    away_team = models.ForeignKey(Team, related_name="away_games", on_delete=models.PROTECT)
    home_score = models.PositiveSmallIntegerField("home score", null=True, blank=True)
    away_score = models.PositiveSmallIntegerField("away score", null=True, blank=True)

    class Meta:
        ordering = ["-date", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(home_team=F("away_team")), name="game_teams_differ",
                violation_error_message="A team cannot play itself.",
            ),
            models.UniqueConstraint(
                fields=["date", "home_team"], name="game_one_home_game_per_day",
                violation_error_message="This team already plays at home on that date.",
            ),
            models.CheckConstraint(
                condition=Q(season__regex=r"^\d{4}-\d{2}$"), name="game_season_format",
                violation_error_message="Season must look like 2025-26.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.away_team.abbreviation} @ {self.home_team.abbreviation} {self.date}"


class PlayerGameStat(models.Model):
    """A player's box-score line in one game."""

    game = models.ForeignKey(Game, related_name="stat_lines", on_delete=models.CASCADE)
    player = models.ForeignKey(Player, related_name="stat_lines", on_delete=models.CASCADE)
    team = models.ForeignKey(Team, related_name="stat_lines", on_delete=models.PROTECT)
    minutes = models.DecimalField("minutes", max_digits=4, decimal_places=1, default=0)
    points = models.PositiveSmallIntegerField("points", default=0)
    offensive_rebounds = models.PositiveSmallIntegerField("offensive rebounds", default=0)
    defensive_rebounds = models.PositiveSmallIntegerField("defensive rebounds", default=0)
    assists = models.PositiveSmallIntegerField("assists", default=0)
    steals = models.PositiveSmallIntegerField("steals", default=0)
    blocks = models.PositiveSmallIntegerField("blocks", default=0)
    turnovers = models.PositiveSmallIntegerField("turnovers", default=0)
    personal_fouls = models.PositiveSmallIntegerField("personal fouls", default=0)
    field_goals_made = models.PositiveSmallIntegerField("field goals made", default=0)
    field_goals_attempted = models.PositiveSmallIntegerField("field goals attempted", default=0)
    three_pointers_made = models.PositiveSmallIntegerField("three-pointers made", default=0)
    three_pointers_attempted = models.PositiveSmallIntegerField("three-pointers attempted", default=0)
    free_throws_made = models.PositiveSmallIntegerField("free throws made", default=0)
    free_throws_attempted = models.PositiveSmallIntegerField("free throws attempted", default=0)

    class Meta:
        ordering = ["game", "player"]
        constraints = [
            models.UniqueConstraint(
                fields=["game", "player"], name="stat_one_line_per_player_per_game",
                violation_error_message="This player already has a stat line in this game.",
            ),
            models.CheckConstraint(
                condition=Q(minutes__gte=0) & Q(minutes__lte=70), name="stat_minutes_range",
                violation_error_message="Minutes must be between 0 and 70.",
            ),
            models.CheckConstraint(
                condition=Q(field_goals_made__lte=F("field_goals_attempted")), name="stat_fg_made_le_attempted",
                violation_error_message="Field goals made cannot exceed field goals attempted.",
            ),
            models.CheckConstraint(
                condition=Q(three_pointers_made__lte=F("three_pointers_attempted")),
                name="stat_3p_made_le_attempted",
                violation_error_message="Three-pointers made cannot exceed three-pointers attempted.",
            ),
            models.CheckConstraint(
                condition=Q(three_pointers_made__lte=F("field_goals_made"))
                & Q(three_pointers_attempted__lte=F("field_goals_attempted")),
                name="stat_3p_within_fg",
                violation_error_message="Three-pointers are field goals: they cannot exceed field goal totals.",
            ),
            models.CheckConstraint(
                condition=Q(free_throws_made__lte=F("free_throws_attempted")), name="stat_ft_made_le_attempted",
                violation_error_message="Free throws made cannot exceed free throws attempted.",
            ),
            models.CheckConstraint(
                condition=Q(
                    points=2 * F("field_goals_made") + F("three_pointers_made") + F("free_throws_made")
                ),
                name="stat_points_match_shots",
                violation_error_message="Points must equal 2×FGM + 3PM + FTM.",
            ),
            models.CheckConstraint(
                condition=Q(personal_fouls__lte=6), name="stat_fouls_at_most_six",
                violation_error_message="A player fouls out at six personal fouls.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.player} in {self.game}"

    @property
    def rebounds(self) -> int:
        return self.offensive_rebounds + self.defensive_rebounds


class StatModel(models.Model):
    """A saved projection model (e.g. next-game points) that the task queue trains."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    name = models.CharField("name", max_length=100, unique=True)
    target = models.CharField(
        "target statistic", max_length=32, default="points",
        choices=[(s, s.replace("_", " ")) for s in ("points", "assists", "defensive_rebounds", "steals", "blocks")],
    )
    window_games = models.PositiveSmallIntegerField(
        "window (games)", default=10, help_text="How many recent games the projection averages."
    )
    status = models.CharField("status", max_length=16, choices=Status.choices, default=Status.DRAFT)
    metrics = models.JSONField("metrics", default=dict, blank=True, help_text="Filled in by training.")
    trained_at = models.DateTimeField("trained at", null=True, blank=True)
    created_at = models.DateTimeField("created", auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(window_games__gte=1) & Q(window_games__lte=82), name="statmodel_window_range",
                violation_error_message="The window must be between 1 and 82 games.",
            ),
        ]

    def __str__(self) -> str:
        return self.name
