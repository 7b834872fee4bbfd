"""What the NBA MCP server's tools take and give: bounded argument types and the structured-output models.

Pydantic models the SDK turns into each tool's output schema (tools/list) and validates each answer against.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

Season = Annotated[str | None, Field(default=None, pattern=r"^(\d{4}-\d{2})$",
                                     description="Like 2025-26; without it, the tenant's reports.default_season.")]
SeasonOrAll = Annotated[str | None, Field(default=None, pattern=r"^(\d{4}-\d{2}|all)$",
                                          description="Like 2025-26, or all; default reports.default_season.")]
PlayerId = Annotated[int, Field(ge=1, le=2_147_483_647, description="A player's id (search_players gives it).")]
TeamName = Annotated[str, Field(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9 .'-]+$",
                                description="Abbreviation (LAL), nickname (Lakers), full name or id.")]
Limit = Annotated[int | None, Field(default=None, ge=1, le=500,
                                    description="Most rows to return (capped by the tenant's mcp.max_results).")]


# ------------------------------------------------------------------ structured outputs
class PlayerRow(BaseModel):
    id: int
    nba_id: int
    full_name: str
    team: str | None
    is_active: bool


class TeamRow(BaseModel):
    id: int
    abbreviation: str
    full_name: str
    city: str
    nickname: str


class PlayerList(BaseModel):
    players: list[PlayerRow]
    count: int
    truncated: bool


class SeasonAverages(BaseModel):
    season: str
    games: int
    ppg: float | None
    rpg: float | None
    apg: float | None
    spg: float | None
    bpg: float | None
    tpg: float | None
    fg_pct: float | None
    score: float | None


class Scoring(BaseModel):
    model: str
    weights: dict[str, float]


class PlayerAverages(BaseModel):
    player: PlayerRow
    scoring: Scoring
    seasons: list[SeasonAverages]


class GameLogLine(BaseModel):
    game_id: int
    date: str
    opponent: str
    home: bool
    minutes: float
    points: int
    rebounds: int
    assists: int
    steals: int
    blocks: int
    turnovers: int


class GameLog(BaseModel):
    player: PlayerRow
    season: str
    games: list[GameLogLine]
    count: int
    truncated: bool


class Comparison(BaseModel):
    season: str
    players: list[PlayerAverages]


class RosterPlayer(PlayerRow):
    games: int
    ppg: float | None
    rpg: float | None
    apg: float | None


class Roster(BaseModel):
    team: TeamRow
    season: str
    players: list[RosterPlayer]
    truncated: bool


class TeamList(BaseModel):
    teams: list[TeamRow]
    count: int


class GameRow(BaseModel):
    id: int
    date: str
    home_team: str
    away_team: str
    home_score: int | None
    away_score: int | None


class GameList(BaseModel):
    season: str
    games: list[GameRow]
    count: int
    truncated: bool


class BoxLine(BaseModel):
    player_id: int
    player: str
    minutes: float
    points: int
    rebounds: int
    assists: int


class BoxGame(GameRow):
    season: str


class BoxScore(BaseModel):
    game: BoxGame
    home: list[BoxLine]
    away: list[BoxLine]


class StandingRow(TeamRow):
    wins: int
    losses: int
    win_pct: float | None


class Standings(BaseModel):
    season: str
    standings: list[StandingRow]


class ProjectionModel(BaseModel):
    name: str
    window_games: int
    mae: float | None


class TrainingRun(BaseModel):
    run_id: str
    task: str
    status: str
    finished: bool
    priority: str
    progress: float
    progress_message: str
    attempts: int
    result: dict | None
    error: str
    submitted_at: str | None
    finished_at: str | None


RunId = Annotated[str, Field(pattern=r"^[0-9a-fA-F-]{32,36}$", description="A run id (train_points_model gives it).")]


class Projection(BaseModel):
    player: PlayerRow
    model: ProjectionModel
    recent_average: float
    recent_minutes: float
    projected_points: float
