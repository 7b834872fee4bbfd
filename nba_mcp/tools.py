"""The NBA MCP server's tools, resources and prompt on the official SDK's MCPServer.

Every tool runs through `nba_mcp.calls.tool_call` in a worker thread set to the tenant's schema (its plan's
tools only, metered, bounded); tools/list shows the caller's plan's tools only.
"""

from __future__ import annotations

import functools
import json
import time
from contextvars import ContextVar
from typing import Annotated, Any, Literal

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ListToolsResult, TextContent
from pydantic import Field

from nba_mcp import calls, queries, training
from nba_mcp.gate import principal_of
from nba_mcp.outputs import (
    BoxScore,
    Comparison,
    GameList,
    GameLog,
    Limit,
    PlayerAverages,
    PlayerId,
    PlayerList,
    Projection,
    Roster,
    RunId,
    Season,
    SeasonOrAll,
    Standings,
    TeamList,
    TeamName,
    TrainingRun,
)
from nba_mcp.tenancy import Principal, in_schema, in_thread

SERVICE_NAME = "nba-mcp-server"
VERSION = "1.0.0"
# How often a waiting train_points_model call reads its run's progress, and the longest it waits.
TRAINING_POLL_SECONDS = 0.1
TRAINING_WAIT_MAX = 240


# The principal of the message being handled, for handlers the SDK gives no Context (static resources).
_current: ContextVar[Principal | None] = ContextVar("courtside_mcp_principal", default=None)


async def _principal_middleware(ctx: ServerRequestContext, call_next):
    """SDK middleware: every inbound message carries its HTTP request's principal into its handler.

    (A `notifications/cancelled` is acted on by TenantGate, before the SDK sees it: see there why.)
    """
    principal = principal_of(ctx.request) if ctx.request is not None else None
    token = _current.set(principal)
    try:
        return await call_next(ctx)
    finally:
        _current.reset(token)


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise RuntimeError("An MCP request reached a handler without a tenant.")
    return principal


class CourtsideMCP(MCPServer):
    """MCPServer with the tools of the caller's plan only in tools/list."""

    instance = ""

    async def _handle_list_tools(self, ctx: ServerRequestContext, params) -> ListToolsResult:
        listed = await super()._handle_list_tools(ctx, params)
        principal = principal_of(ctx.request)
        allowed = set(await in_schema("public", calls.allowed_tools, principal, TOOL_NAMES))
        return ListToolsResult(tools=[tool for tool in listed.tools if tool.name in allowed])


TOOL_NAMES: list[str] = []


def _json(data: Any) -> str:
    return json.dumps(data, default=str, separators=(",", ":"))


async def _run(server: CourtsideMCP, ctx: Context, tool: str, work, **arguments) -> CallToolResult:
    principal = principal_of(ctx.request_context.request)
    outcome = await in_thread(
        calls.tool_call, principal=principal, tool=tool, every_tool=TOOL_NAMES, work=work, arguments=arguments,
        instance=server.instance)
    if outcome.ok:
        return CallToolResult(content=[TextContent(type="text", text=_json(outcome.data))],
                              structured_content=outcome.data)
    body = outcome.error_body()
    return CallToolResult(content=[TextContent(type="text", text=_json(body))], structured_content=body,
                          is_error=True)


async def _follow(ctx: Context, principal: Principal, run_id: str, wait_seconds: int) -> CallToolResult:
    """Wait for a run, sending an MCP progress notification whenever its progress, message or status changes."""
    deadline = time.monotonic() + wait_seconds
    seen = None
    while True:
        state = await in_schema("public", training.run_state, principal=principal, run_id=run_id)
        now = (state["status"], state["progress"], state["progress_message"])
        if now != seen:
            seen = now
            message = state["status"] + (f": {state['progress_message']}" if state["progress_message"] else "")
            await ctx.report_progress(state["progress"], 1.0, message[:200])
        if state["finished"] or time.monotonic() >= deadline:
            break
        await anyio.sleep(TRAINING_POLL_SECONDS)
    return CallToolResult(content=[TextContent(type="text", text=_json(state))], structured_content=state,
                          is_error=state["status"] in ("failed", "cancelled"))


def build_server() -> CourtsideMCP:
    server = CourtsideMCP(
        name=SERVICE_NAME, version=VERSION, middleware=[_principal_middleware],
        instructions="Courtside's NBA data of your organisation: players, teams, games, standings, averages, "
                     "projections. Every answer comes from your own tenant's data only.",
    )

    def tool(name: str, description: str):
        TOOL_NAMES.append(name) if name not in TOOL_NAMES else None
        return server.tool(name=name, description=description, structured_output=True)

    @tool("search_players", "Find players by part of their name, optionally on one team.")
    async def search_players(
        ctx: Context,
        query: Annotated[str, Field(min_length=1, max_length=100, description="Part of the player's name.")],
        team: Annotated[str | None, Field(default=None, min_length=2, max_length=64)] = None,
        active_only: bool = False,
        limit: Limit = None,
    ) -> Annotated[CallToolResult, PlayerList]:
        return await _run(server, ctx, "search_players", queries.search_players, query=query, team=team,
                          active_only=active_only, limit=limit)

    @tool("player_averages", "A player's per-season averages (ppg, rpg, apg, spg, bpg, tpg, fg%) and player score.")
    async def player_averages(ctx: Context, player_id: PlayerId,
                              season: SeasonOrAll = None) -> Annotated[CallToolResult, PlayerAverages]:
        return await _run(server, ctx, "player_averages", queries.player_averages, player_id=player_id,
                          season=season)

    @tool("player_game_log", "A player's game-by-game lines in a season, newest first.")
    async def player_game_log(ctx: Context, player_id: PlayerId, season: Season = None,
                              limit: Limit = None) -> Annotated[CallToolResult, GameLog]:
        return await _run(server, ctx, "player_game_log", queries.player_game_log, player_id=player_id,
                          season=season, limit=limit)

    @tool("compare_players", "Two players' season averages side by side.")
    async def compare_players(ctx: Context, player_a: PlayerId, player_b: PlayerId,
                              season: SeasonOrAll = None) -> Annotated[CallToolResult, Comparison]:
        return await _run(server, ctx, "compare_players", queries.compare_players, player_a=player_a,
                          player_b=player_b, season=season)

    @tool("team_roster", "A team's players with their season averages, best scorers first.")
    async def team_roster(ctx: Context, team: TeamName, season: Season = None,
                          limit: Limit = None) -> Annotated[CallToolResult, Roster]:
        return await _run(server, ctx, "team_roster", queries.team_roster, team=team, season=season, limit=limit)

    @tool("list_teams", "The teams of the league.")
    async def list_teams(ctx: Context) -> Annotated[CallToolResult, TeamList]:
        return await _run(server, ctx, "list_teams", queries.list_teams)

    @tool("list_games", "Games of a season, newest first, optionally of one team.")
    async def list_games(ctx: Context, season: Season = None,
                         team: Annotated[str | None, Field(default=None, min_length=2, max_length=64)] = None,
                         limit: Limit = None) -> Annotated[CallToolResult, GameList]:
        return await _run(server, ctx, "list_games", queries.list_games, season=season, team=team, limit=limit)

    @tool("box_score", "One game's box score: every player's minutes, points, rebounds and assists.")
    async def box_score(ctx: Context, game_id: Annotated[int, Field(ge=1, le=2_147_483_647)]
                        ) -> Annotated[CallToolResult, BoxScore]:
        return await _run(server, ctx, "box_score", queries.box_score, game_id=game_id)

    @tool("standings", "Wins, losses and win percentage of every team in a season.")
    async def standings(ctx: Context, season: Season = None) -> Annotated[CallToolResult, Standings]:
        return await _run(server, ctx, "standings", queries.standings, season=season)

    @tool("project_points", "A player's projected points next game, with the tenant's trained points model.")
    async def project_points(
        ctx: Context, player_id: PlayerId,
        model: Annotated[str | None, Field(default=None, min_length=1, max_length=100)] = None,
    ) -> Annotated[CallToolResult, Projection]:
        return await _run(server, ctx, "project_points", queries.project_points, player_id=player_id, model=model)

    @tool("train_points_model", "Train (or retrain) a points model on your data as a task at your priority; "
          "streams the run's progress while you wait, up to wait_seconds. Cancelling the call cancels the run; "
          "if you disconnect it goes on: ask training_run_state with its run_id.")
    async def train_points_model(
        ctx: Context,
        name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[\w .-]+$")],
        window_games: Annotated[int, Field(ge=1, le=82)] = 10,
        priority: Annotated[Literal["low", "normal", "high", "critical"] | None, Field(
            default=None, description="Within your plan's highest priority; default the task's.")] = None,
        wait_seconds: Annotated[int, Field(ge=0, le=TRAINING_WAIT_MAX,
                                           description="Longest wait for the run to finish.")] = 120,
    ) -> Annotated[CallToolResult, TrainingRun]:
        principal = principal_of(ctx.request_context.request)
        work = functools.partial(training.training_submit, principal=principal, request_id=ctx.request_id)
        submitted = await _run(server, ctx, "train_points_model", work, name=name, window_games=window_games,
                               priority=priority)
        if submitted.is_error:
            return submitted
        return await _follow(ctx, principal, submitted.structured_content["run_id"], wait_seconds)

    @tool("training_run_state", "The state of one of your training runs by id (status, progress, result).")
    async def training_run_state(ctx: Context, run_id: RunId) -> Annotated[CallToolResult, TrainingRun]:
        work = functools.partial(training.run_state, principal=principal_of(ctx.request_context.request))
        return await _run(server, ctx, "training_run_state", work, run_id=run_id)

    @tool("cancel_training_run", "Cancel one of your training runs by id (a running one stops at its next step).")
    async def cancel_training_run(ctx: Context, run_id: RunId) -> Annotated[CallToolResult, TrainingRun]:
        work = functools.partial(training.run_cancel, principal=principal_of(ctx.request_context.request))
        return await _run(server, ctx, "cancel_training_run", work, run_id=run_id)

    @server.resource("nba://teams", name="teams", mime_type="application/json",
                     description="The teams of your league.")
    async def teams_resource() -> str:
        return _json(await in_schema(current_principal().schema_name, queries.list_teams))

    @server.resource("nba://season/current", name="current-season", mime_type="application/json",
                     description="The current season (reports.default_season) and how many of its games are played.")
    async def season_resource() -> str:
        return _json(await in_schema(current_principal().schema_name, queries.current_season))

    @server.prompt(name="scouting_report", description="A scouting report of one player from your data.")
    def scouting_report(player_name: str) -> str:
        return (f"Write a scouting report of {player_name[:100]}. First call search_players to find the player's "
                "id, then player_averages (season all) and player_game_log for the current season, and "
                "project_points if a trained model exists. Cover scoring, rebounding, playmaking, trend over "
                "the last games and the projection; cite the figures you used.")

    return server
