"""The NBA MCP service through the official SDK's client, over real HTTP, against a live mcp_serve process."""

from __future__ import annotations

import time

import anyio
import httpx2
import pytest
from django_tenants.utils import schema_context

from tests.nba_mcp.conftest import host, make_key, mcp_session

pytestmark = pytest.mark.django_db(transaction=True)

TOOLS = {"search_players", "player_averages", "player_game_log", "compare_players", "team_roster", "list_teams",
         "list_games", "box_score", "standings", "project_points", "train_points_model", "training_run_state",
         "cancel_training_run"}


def run(coroutine_function, *args):
    return anyio.run(coroutine_function, *args)


def test_lists_tools_with_bounded_input_schemas_resources_and_prompts(mcp_server, leagues):
    _, key = leagues["lakers"]

    async def scenario():
        async with mcp_session(mcp_server.url, host=host("lakers"), key=key) as session:
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            resources = {str(resource.uri) for resource in (await session.list_resources()).resources}
            prompts = {prompt.name for prompt in (await session.list_prompts()).prompts}
            prompt = await session.get_prompt("scouting_report", {"player_name": "Laker Star"})
            return tools, resources, prompts, prompt

    tools, resources, prompts, prompt = run(scenario)
    assert set(tools) == TOOLS
    limit = tools["search_players"].input_schema["properties"]["limit"]
    bounds = {k: v for branch in limit.get("anyOf", [limit]) for k, v in branch.items()}
    assert (bounds["minimum"], bounds["maximum"]) == (1, 500)
    assert tools["search_players"].input_schema["properties"]["query"]["maxLength"] == 100
    assert "players" in tools["search_players"].output_schema["properties"]
    assert resources == {"nba://teams", "nba://season/current"}
    assert prompts == {"scouting_report"}
    assert "Laker Star" in prompt.messages[0].content.text


def test_every_tool_answers_from_the_tenants_own_data(mcp_server, leagues):
    league, key = leagues["lakers"]
    star, rival = league.players["star"], league.players["rival"]
    game = league.games[0]
    with schema_context("lakers"):
        from league.models import StatModel

        StatModel.objects.create(name="points-v1", target="points", window_games=2, status="ready",
                                 metrics={"intercept": 1.0, "recent_average": 1.0, "minutes": 0.0, "mae": 2.5})

    async def scenario():
        async with mcp_session(mcp_server.url, host=host("lakers"), key=key) as session:
            calls = {
                "search_players": {"query": "laker"},
                "player_averages": {"player_id": star.pk},
                "player_game_log": {"player_id": star.pk},
                "compare_players": {"player_a": star.pk, "player_b": rival.pk},
                "team_roster": {"team": "HOM"},
                "list_teams": {},
                "list_games": {"team": "AWY"},
                "box_score": {"game_id": game.pk},
                "standings": {},
                "project_points": {"player_id": star.pk},
            }
            answers = {}
            for name, arguments in calls.items():
                result = await session.call_tool(name, arguments)
                assert not result.is_error, (name, result.content)
                answers[name] = result.structured_content
            teams = await session.read_resource("nba://teams")
            season = await session.read_resource("nba://season/current")
            return answers, teams.contents[0].text, season.contents[0].text

    answers, teams_text, season_text = run(scenario)
    assert {p["full_name"] for p in answers["search_players"]["players"]} == {"Laker Star", "Laker Bench",
                                                                                "Laker Rival"}
    # The star scored 20, 22, 24 points: 22 a game; the score is the tenant's weights over his averages.
    [averages] = answers["player_averages"]["seasons"]
    assert (averages["games"], averages["ppg"], averages["apg"], averages["rpg"]) == (3, 22.0, 3.0, 4.0)
    assert averages["score"] == pytest.approx(22.0 * 1.0 + 4.0 * 1.2 + 3.0 * 1.5)
    assert [line["points"] for line in answers["player_game_log"]["games"]] == [24, 22, 20]
    assert [p["player"]["full_name"] for p in answers["compare_players"]["players"]] == ["Laker Star", "Laker Rival"]
    assert [p["full_name"] for p in answers["team_roster"]["players"]] == ["Laker Star", "Laker Bench"]
    assert {t["full_name"] for t in answers["list_teams"]["teams"]} == {"Laker Home Team", "Laker Away Team"}
    assert answers["list_games"]["count"] == 3
    assert {line["player"] for line in answers["box_score"]["home"]} == {"Laker Star", "Laker Bench"}
    table = {row["abbreviation"]: (row["wins"], row["losses"]) for row in answers["standings"]["standings"]}
    assert table == {"HOM": (2, 1), "AWY": (1, 2)}
    # points-v1: 1 + 1.0 x the average of his last 2 games (24, 22) = 24.
    assert answers["project_points"]["projected_points"] == 24.0
    assert "Laker Home Team" in teams_text and "Warrior" not in teams_text
    assert '"games":3' in season_text


def test_bad_input_and_unknown_rows_are_tool_errors_in_the_error_shape(mcp_server, leagues):
    _, key = leagues["lakers"]

    async def scenario():
        async with mcp_session(mcp_server.url, host=host("lakers"), key=key) as session:
            too_many = await session.call_tool("search_players", {"query": "a", "limit": 501})
            missing = await session.call_tool("player_averages", {"player_id": 999999})
            bad_season = await session.call_tool("standings", {"season": "1999"})
            return too_many, missing, bad_season

    too_many, missing, bad_season = run(scenario)
    assert too_many.is_error and "limit" in too_many.content[0].text
    assert bad_season.is_error and "season" in bad_season.content[0].text
    assert missing.is_error and missing.structured_content["error"]["code"] == "not_found"


def _post_tools_list(url: str, *, host_header: str, authorization: str | None, origin: str | None = None):
    headers = {"Host": host_header, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if authorization is not None:
        headers["Authorization"] = authorization
    if origin is not None:
        headers["Origin"] = origin
    return httpx2.post(url, headers=headers, timeout=30,
                       json={"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})


def test_no_key_another_tenants_key_and_a_revoked_key_get_401_before_any_tool_runs(mcp_server, leagues):
    from nba_mcp.models import ToolCall
    from tenants import services
    from tenants.models import ApiKey

    _, lakers_key = leagues["lakers"]
    _, warriors_key = leagues["warriors"]
    revoked = make_key("lakers", name="old")
    services.api_key_revoke(key=ApiKey.objects.get(prefix=revoked[3:11]))

    for authorization in (None, f"Bearer {warriors_key}", f"Bearer {revoked}", "Bearer cs_00000000.nope-nope-nope",
                          f"Api-Key {lakers_key}", lakers_key):
        answer = _post_tools_list(mcp_server.url, host_header=host("lakers"), authorization=authorization)
        assert answer.status_code == 401, authorization
        assert answer.json()["error"]["code"] == "not_authenticated"
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert _post_tools_list(mcp_server.url, host_header=host("lakers"),
                            authorization=f"Bearer {lakers_key}").status_code == 200

    # The SDK's client, given another tenant's key, fails to connect at all.
    async def connect():
        async with mcp_session(mcp_server.url, host=host("lakers"), key=warriors_key) as session:
            await session.call_tool("list_teams", {})

    with pytest.raises(BaseException) as refused:  # noqa: B017 - an ExceptionGroup of the SDK's task group
        run(connect)
    assert "401" in repr(refused.value) or "Unauthorized" in repr(refused.value) or refused.value
    time.sleep(1.0)  # past the call log's batch period: a row of any call would be written by now
    assert not ToolCall.objects.exists()


def test_unknown_hosts_and_foreign_browser_origins_are_refused(mcp_server, leagues):
    _, key = leagues["lakers"]
    unknown = _post_tools_list(mcp_server.url, host_header="celtics.localhost", authorization=f"Bearer {key}")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "unknown_host")
    operator = _post_tools_list(mcp_server.url, host_header="localhost", authorization=f"Bearer {key}")
    assert operator.status_code == 404
    rebinding = _post_tools_list(mcp_server.url, host_header=host("lakers"), authorization=f"Bearer {key}",
                                 origin="http://evil.example")
    assert (rebinding.status_code, rebinding.json()["error"]["code"]) == (403, "bad_origin")
    same_site = _post_tools_list(mcp_server.url, host_header=f"LAKERS.localhost.:{mcp_server.port}",
                                 authorization=f"Bearer {key}", origin=f"http://lakers.localhost:{mcp_server.port}")
    assert same_site.status_code == 200


def test_a_message_over_the_size_bound_is_refused_with_413_before_the_sdk_reads_it(mcp_server, leagues):
    _, key = leagues["lakers"]
    headers = {"Host": host("lakers"), "Content-Type": "application/json",
               "Accept": "application/json, text/event-stream", "Authorization": f"Bearer {key}"}
    padding = "x" * (300 * 1024)
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "search_players", "arguments": {"query": padding}}}
    declared = httpx2.post(mcp_server.url, headers=headers, json=body, timeout=30)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "body_too_large"

    def chunks():  # no Content-Length: the bound holds on what arrives
        yield b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"pad": "'
        for _ in range(300):
            yield b"x" * 1024
        yield b'"}}'

    streamed = httpx2.post(mcp_server.url, headers=headers, content=chunks(), timeout=30)
    assert streamed.status_code == 413
    assert _post_tools_list(mcp_server.url, host_header=host("lakers"),
                            authorization=f"Bearer {key}").status_code == 200


def test_two_tenants_calling_concurrently_each_see_only_their_own_rows(mcp_server, leagues):
    expected = {}
    for schema_name, (league, _) in leagues.items():
        expected[schema_name] = {p.full_name for p in league.players.values()}
    assert not expected["lakers"] & expected["warriors"]

    async def one_tenant(schema_name, key, seen):
        async with mcp_session(mcp_server.url, host=host(schema_name), key=key) as session:
            for _ in range(8):
                result = await session.call_tool("search_players", {"query": "a"})
                seen.append(("players", frozenset(p["full_name"] for p in result.structured_content["players"])))
                teams = await session.call_tool("list_teams", {})
                seen.append(("teams", frozenset(t["full_name"] for t in teams.structured_content["teams"])))

    async def scenario():
        seen = {name: [] for name in leagues}
        async with anyio.create_task_group() as group:
            for schema_name, (_, key) in leagues.items():
                for _ in range(3):  # three clients per tenant, interleaved on one server process
                    group.start_soon(one_tenant, schema_name, key, seen[schema_name])
        return seen

    seen = run(scenario)
    for schema_name, answers in seen.items():
        assert len(answers) == 48
        tag = "Laker" if schema_name == "lakers" else "Warrior"
        for _, answer in answers:
            assert answer and all(name.startswith(tag) for name in answer), (schema_name, answer)
        assert {answer for kind, answer in answers if kind == "players"} == {frozenset(expected[schema_name])}
        assert {answer for kind, answer in answers if kind == "teams"} == {
            frozenset({f"{tag} Home Team", f"{tag} Away Team"})}
