"""A live `manage.py mcp_serve` process on the test database, league data per tenant, and the SDK's client.

The server is a real subprocess (uvicorn, the SDK's Streamable HTTP app, our tenant gate) reached
over real HTTP by the official SDK's client (`ClientSession` over `streamable_http_client`), with
the tenant's host in the Host header (Python's resolver does not know `<tenant>.localhost`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2
import pytest
from django_tenants.utils import schema_context
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import database_url, tenant_host

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 90


@dataclass
class McpProcess:
    process: subprocess.Popen
    port: int
    service_id: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


def start_mcp_serve(*extra: str, settings_module: str = "tests.nba_mcp.server_settings",
                    env: dict | None = None) -> McpProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, "PYTHONPATH": str(ROOT),
           "DATABASE_URL": database_url(), **(env or {})}
    env = {name: value for name, value in env.items() if value is not None}  # None: unset
    process = subprocess.Popen([sys.executable, "manage.py", "mcp_serve", "--port", "0", *extra], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + STARTUP_SECONDS
    line = ""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        found = re.search(r"MCP server (\S+) listening on http://[^:]+:(\d+)/mcp", line)
        if found:
            server = McpProcess(process=process, port=int(found.group(2)), service_id=found.group(1))
            while time.monotonic() < deadline:  # listening means the socket is bound; wait for the app
                try:
                    if httpx2.get(f"http://127.0.0.1:{server.port}/health", timeout=5).status_code == 200:
                        return server
                except httpx2.TransportError:
                    pass
                time.sleep(0.2)
            break
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError(f"mcp_serve did not start: {line!r} {process.stderr.read()[-3000:]}")


@pytest.fixture(scope="module")
def mcp_server(django_db_blocker):
    """One live mcp_serve process for a test module (not registered: the registry tests start their own)."""
    with django_db_blocker.unblock():
        server = start_mcp_serve("--no-register")
    yield server
    server.stop()


@contextlib.asynccontextmanager
async def mcp_session(url: str, *, host: str, key: str | None):
    headers = {"Host": host}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                yield session


def make_key(schema_name: str, name: str = "agent") -> str:
    from tenants import services
    from tenants.models import Tenant

    return services.api_key_create(tenant=Tenant.objects.get(schema_name=schema_name), name=name)[1]


@dataclass
class League:
    """What a test tenant's league holds: ids to ask for and the figures to expect."""

    schema_name: str
    teams: dict
    players: dict
    games: list


def build_league(schema_name: str, *, tag: str, season: str = "2025-26", wins: int = 2) -> League:
    """Two teams, three players named after the tenant (`tag`), `wins + 1` finished games with stat lines."""
    from league.models import Game, Player, PlayerGameStat, Team

    with schema_context(schema_name):
        home = Team.objects.create(nba_id=1610612700 + len(tag), abbreviation="HOM", full_name=f"{tag} Home Team",
                                   nickname=f"{tag}Home", city="Homeville", year_founded=1950)
        away = Team.objects.create(nba_id=1610612800 + len(tag), abbreviation="AWY", full_name=f"{tag} Away Team",
                                   nickname=f"{tag}Away", city="Awayville", year_founded=1960)
        players = {
            "star": Player.objects.create(nba_id=9000001, first_name=tag, last_name="Star", full_name=f"{tag} Star",
                                          is_active=True, team=home),
            "bench": Player.objects.create(nba_id=9000002, first_name=tag, last_name="Bench",
                                           full_name=f"{tag} Bench", is_active=True, team=home),
            "rival": Player.objects.create(nba_id=9000003, first_name=tag, last_name="Rival",
                                           full_name=f"{tag} Rival", is_active=True, team=away),
        }
        games = []
        for day in range(wins + 1):
            home_wins = day < wins
            game = Game.objects.create(season=season, date=dt.date(2025, 11, 1) + dt.timedelta(days=day),
                                       home_team=home, away_team=away, home_score=110 if home_wins else 90,
                                       away_score=100)
            games.append(game)
            for key, team, made in (("star", home, 10 + day), ("bench", home, 2), ("rival", away, 7)):
                PlayerGameStat.objects.create(
                    game=game, player=players[key], team=team, minutes=30, field_goals_made=made,
                    field_goals_attempted=made + 5, points=2 * made, assists=3, defensive_rebounds=4)
    return League(schema_name=schema_name, teams={"home": home, "away": away}, players=players, games=games)


@pytest.fixture
def leagues(transactional_db):
    """Different league data in the Lakers' and the Warriors' schemas, and an API key of each (committed)."""
    lakers = build_league("lakers", tag="Laker", wins=2)
    warriors = build_league("warriors", tag="Warrior", wins=1)
    return {"lakers": (lakers, make_key("lakers")), "warriors": (warriors, make_key("warriors"))}


def host(schema_name: str) -> str:
    return tenant_host(schema_name)
