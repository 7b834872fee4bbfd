"""The NBA MCP server: the official SDK's MCPServer over Streamable HTTP, behind Courtside's tenant gate.

`build_app()` is the ASGI application `manage.py mcp_serve` runs under uvicorn:

- `TenantGate` (outermost) answers `/health` itself and, for `/mcp`, resolves the tenant from the
  Host header and requires one of that tenant's active API keys as `Authorization: Bearer cs_…`:
  a key of another tenant, a revoked key or none is an HTTP 401 before the MCP layer reads the
  body, an unknown host a 404. It stands in for the SDK's DNS-rebinding check (which only knows a
  fixed list of hosts): a host must be a tenant's domain, and a browser's Origin must be that host.
- Stateless Streamable HTTP (the SDK's `stateless_http`): no session lives in a process, so any
  instance of `nba-mcp-server` can answer any request and the registry can balance across them.
- Every tool runs through `nba_mcp.calls.tool_call` in a worker thread set to the tenant's schema.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import time
from contextvars import ContextVar
from typing import Annotated, Any, Literal

import anyio
from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, ListToolsResult, TextContent
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from nba_mcp import calls, queries, training
from nba_mcp.tenancy import Principal, Refusal, authenticate, hostname, in_schema, in_thread

SERVICE_NAME = "nba-mcp-server"
VERSION = "1.0.0"
MCP_PATH = "/mcp"
HEALTH_PATH = "/health"
STATE_KEY = "courtside_principal"
# One JSON-RPC message per POST; the largest tool call (arguments are bounded by the tools' schemas) is
# a few KiB. The SDK reads any body whole, so the gate bounds it first.
MAX_BODY_BYTES = 256 * 1024

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
# How often a waiting train_points_model call reads its run's progress, and the longest it waits.
TRAINING_POLL_SECONDS = 0.1
TRAINING_WAIT_MAX = 240


class Projection(BaseModel):
    player: PlayerRow
    model: ProjectionModel
    recent_average: float
    recent_minutes: float
    projected_points: float


# ------------------------------------------------------------------ the server
def principal_of(request: Request | None) -> Principal:
    principal = getattr(getattr(request, "state", None), STATE_KEY, None)
    if principal is None:  # TenantGate lets no /mcp request through without one
        raise RuntimeError("An MCP request reached a tool without a tenant.")
    return principal


def instance_id(port: int | None = None) -> str:
    return f"mcp-{socket.gethostname()}-{port or 0}-{os.getpid()}"


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


# ------------------------------------------------------------------ the HTTP gate
def _error(status: int, code: str, message: str, detail: dict | None = None, headers: dict | None = None):
    return JSONResponse({"error": {"code": code, "message": message, "detail": detail or {}}}, status_code=status,
                        headers=headers)


def _health() -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {"status": "passing", "service": SERVICE_NAME, "tools": len(TOOL_NAMES)}


class TenantGate:
    """ASGI middleware: /health; for /mcp the tenant from the host and its Bearer key, or a JSON refusal."""

    def __init__(self, app, *, server: CourtsideMCP):
        self.app = app
        self.server = server

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        if scope["path"] == HEALTH_PATH:
            try:
                body = await in_schema("public", _health)
            except Exception as error:  # noqa: BLE001 - the health check says why it fails
                return await _error(503, "unhealthy", f"The database cannot be reached: {error}")(scope, receive, send)
            return await JSONResponse({**body, "instance": self.server.instance})(scope, receive, send)
        if scope["path"].rstrip("/") != MCP_PATH:
            return await _error(404, "not_found", f"MCP is served at {MCP_PATH}.")(scope, receive, send)
        origin = request.headers.get("origin")
        if origin and hostname(origin.split("://", 1)[-1]) != hostname(request.headers.get("host")):
            return await _error(403, "bad_origin", "A browser page of another site may not call this MCP server.",
                                {"origin": origin[:200]})(scope, receive, send)
        try:
            principal = await in_thread(authenticate, host_header=request.headers.get("host"),
                                        authorization=request.headers.get("authorization"))
        except Refusal as refusal:
            headers = {"WWW-Authenticate": 'Bearer realm="courtside-mcp"'} if refusal.status == 401 else None
            return await _error(refusal.status, refusal.code, refusal.message, refusal.detail,
                                headers)(scope, receive, send)
        scope.setdefault("state", {})[STATE_KEY] = principal
        if scope["method"] != "POST":
            return await self.app(scope, receive, send)
        try:
            body = await _read_body(scope, receive, limit=MAX_BODY_BYTES)
        except BodyTooLarge:
            return await _error(413, "body_too_large", f"An MCP message is at most {MAX_BODY_BYTES:,} bytes.",
                                {"max_bytes": MAX_BODY_BYTES})(scope, receive, send)
        except ClientDisconnected:
            return None
        await _act_on_cancellation(principal, body)
        return await self.app(scope, _replay(body, receive), send)


class BodyTooLarge(Exception):
    pass


class ClientDisconnected(Exception):
    pass


async def _read_body(scope, receive, *, limit: int) -> bytes:
    """The request's whole body, refused past `limit` bytes (by Content-Length or by what arrives)."""
    declared = dict(scope.get("headers") or []).get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """An ASGI receive that hands the SDK the body already read, then the client's own messages."""
    delivered = False

    async def replay():
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _act_on_cancellation(principal: Principal, body: bytes) -> None:
    """A `notifications/cancelled` cancels the task run the cancelled request submitted.

    On the stateless transport a notification comes on a POST of its own: the SDK answers 202 and
    terminates that request's transport at once, so a handler inside the SDK may be torn down before
    it runs (under load it was, and the run went on). Acting here, before the 202, makes it certain.
    """
    if b"notifications/cancelled" not in body:
        return
    try:
        message = json.loads(body)
    except ValueError:
        return  # the SDK answers malformed JSON with its own parse error
    if not isinstance(message, dict) or message.get("method") != "notifications/cancelled":
        return
    params = message.get("params")
    request_id = params.get("requestId") if isinstance(params, dict) else None
    if isinstance(request_id, (str, int)) and not isinstance(request_id, bool):
        await in_thread(training.cancel_for_request, principal=principal, request_id=request_id)


def build_app(*, instance: str = "", json_response: bool = False):
    server = build_server()
    server.instance = instance
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH, stateless_http=True, json_response=json_response,
        # Hosts are checked by TenantGate against the tenants' domains (and Origin against the host).
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return TenantGate(app, server=server)
