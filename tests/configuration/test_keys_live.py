"""Every shipped key, changed through the API, changes behaviour within 1 s in another web server and on the cluster.

One test per key. The change goes through the operator or tenant API of the
live server (this process); the behaviour is then watched in a second web
server (a `manage.py runserver` subprocess) over HTTP and in a task running on
a real `manage.py qcluster` (tests/configuration/live_jobs.py, which probes
through the product's own code). Both must show the new behaviour within one
second of the API's answer: nothing but hot reload (NOTIFY -> each process's
listener) can carry it there, since no process re-reads on a timer.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass
from types import SimpleNamespace

import httpx
import pytest
from django.db import connection
from django.test import Client
from django_q.tasks import async_task
from django_tenants.utils import schema_context

from tasks.engine.broker import get_task_broker
from tenants import services as tenant_services
from tests.configuration.live_processes import WebServerProcess
from tests.conftest import make_user, tenant_host
from tests.foundation import factories
from tests.tasks.conftest import ClusterProcess, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.django_db(transaction=True)]
USES_EXAMPLE_KEYS = False  # the product's keys only
PASSWORD = "live-pass-word-123"
WITHIN = 1.0  # seconds: the promise


@pytest.fixture(scope="module")
def processes(django_db_setup, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("live-keys")
    config_dir = log_dir / "config"
    config_dir.mkdir()
    with ClusterProcess(broker="orm", log_dir=log_dir) as cluster:
        cluster.env["COURTSIDE_CONFIG_DIR"] = str(config_dir)  # no file layer: only the API changes anything
        cluster.start()
        web = WebServerProcess(env=cluster.env, log_dir=log_dir).start()
        try:
            yield SimpleNamespace(cluster=cluster, web=web)
        finally:
            web.stop()


@dataclass
class Live:
    web_a: str  # the live server: where changes are made
    web_b: str  # the runserver subprocess: where web behaviour is watched
    api_key: str
    session: str
    tmp_path: object
    player: int

    def change(self, key, value, *, tenant: str | None = None, as_tenant: bool = False) -> float:
        """Change a key through the API of web A; the moment the answer arrived (the change is committed)."""
        if as_tenant:
            response = httpx.post(f"{self.web_a}/api/v1/config/overrides/", json={"key": key, "value": value},
                                  headers={"Host": tenant_host("lakers")}, auth=("coach", PASSWORD), timeout=30)
        else:
            body = {"key": key, "value": value, **({"tenant": tenant} if tenant else {})}
            response = httpx.post(f"{self.web_a}/api/v1/config/entries/", json=body, headers={"Host": "localhost"},
                                  auth=("operator", PASSWORD), timeout=30)
        assert response.status_code in (200, 201), response.text
        return time.time()

    def get_b(self, path: str, *, auth: str = "key") -> httpx.Response:
        headers = {"Host": tenant_host("lakers")}
        if auth == "key":
            headers["Authorization"] = f"Api-Key {self.api_key}"
        cookies = {"sessionid": self.session} if auth == "session" else None
        return httpx.get(f"{self.web_b}{path}", headers=headers, cookies=cookies, timeout=30)

    def start_probe(self, probe: str, arguments: dict, expected):
        marker = str(self.tmp_path / f"probe-{uuid.uuid4().hex[:8]}")
        with schema_context("lakers"):
            async_task("tests.configuration.live_jobs.observe", "lakers", probe, arguments, expected, marker,
                       broker=get_task_broker())
        ready = wait_for(lambda: _read(marker + ".ready"), timeout=60, message="the probe to start on the cluster")
        assert ready["value"] != expected, f"the cluster already shows {expected!r} before the change"
        return marker


def _read(path: str):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@pytest.fixture
def live(processes, live_server, tmp_path):
    # The previous test's flush emptied the configuration tables without a NOTIFY: tell every process.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('courtside_config', '{}')")
    make_user("public", username="operator", superuser=True, password=PASSWORD)
    make_user("lakers", username="coach", superuser=True, password=PASSWORD)
    from tenants.models import Tenant

    lakers = Tenant.objects.get(schema_name="lakers")
    _, api_key = tenant_services.api_key_create(tenant=lakers, name="live", scope="read")
    with schema_context("lakers"):
        home, away = factories.team("HOM"), factories.team("AWY")
        factories.team("THR")
        star = factories.player("Star Player", home)
        for day in (21, 23):
            game = factories.game(home, away, date=dt.date(2025, 10, day))
            factories.stat_line(game, star, fgm=10, fga=20, offensive_rebounds=2, defensive_rebounds=4, assists=5,
                                minutes=30)
        old = factories.game(home, away, date=dt.date(2024, 11, 1), season="2024-25")
        factories.stat_line(old, star, fgm=4, fga=9, assists=1, minutes=20)
        client = Client(HTTP_HOST=tenant_host("lakers"))
        from django.contrib.auth import get_user_model

        client.force_login(get_user_model().objects.get(username="coach"))
        session = client.cookies["sessionid"].value
    connection.set_schema_to_public()
    live = Live(web_a=live_server.url, web_b=processes.web.url, api_key=api_key, session=session,
                tmp_path=tmp_path, player=star.pk)
    assert live.get_b("/api/v1/teams/").status_code == 200  # web B is up and past its first request
    return live


def assert_live(live: Live, *, change, web, web_expected, probe: str, arguments: dict, probe_expected):
    """Probe both processes, change the key, and require both to show the new behaviour within WITHIN s."""
    before = web()
    assert before != web_expected, f"web B already shows {web_expected!r} before the change"
    marker = live.start_probe(probe, arguments, probe_expected)
    changed_at = change()

    seen = web()
    while seen != web_expected and time.time() - changed_at < 5:
        time.sleep(0.02)
        seen = web()
    web_delay = time.time() - changed_at
    assert seen == web_expected, f"web B still shows {seen!r}"
    assert web_delay <= WITHIN, f"web B took {web_delay:.2f} s"

    outcome = wait_for(lambda: _read(marker), timeout=30, message="the probe on the cluster to finish")
    assert outcome["matched"], f"the cluster task still saw {outcome['value']!r}"
    assert outcome["seen_at"] - changed_at <= WITHIN, f"the cluster took {outcome['seen_at'] - changed_at:.2f} s"


def _averages(live: Live) -> dict:
    body = live.get_b(f"/api/v1/players/{live.player}/averages/").json()
    return {"model": body["scoring"]["model"], "score": round(body["seasons"][-1]["score"], 6),
            "seasons": [row["season"] for row in body["seasons"]]}


def test_api_page_size(live):
    assert_live(
        live, change=lambda: live.change("api.page_size", 2),
        web=lambda: len(live.get_b("/api/v1/teams/").json()["results"]), web_expected=2,
        probe="reader", arguments={"reader": "api_page_size"}, probe_expected=2,
    )


def test_api_rate_limit_per_minute(live):
    def web():
        response = live.get_b("/api/v1/teams/")
        return response.json()["error"]["code"] if response.status_code == 429 else response.status_code

    assert_live(
        live, change=lambda: live.change("api.rate_limit_per_minute", 2, tenant="lakers"),
        web=web, web_expected="burst_limit_exceeded",
        probe="admit", arguments={}, probe_expected="burst_limit_exceeded",
    )


def test_anonymous_rate_limit_per_minute(live):
    def web():
        response = live.get_b("/api/docs/", auth="none")
        return response.json()["error"]["code"] if response.status_code == 429 else response.status_code

    assert_live(
        live, change=lambda: live.change("anonymous.rate_limit_per_minute", 1),
        web=web, web_expected="anonymous_rate_limit_exceeded",
        probe="admit_anonymous", arguments={}, probe_expected="anonymous_rate_limit_exceeded",
    )


def test_cache_ttl_seconds(live):
    def expires_within_a_second_and_a_bit(tag: str) -> bool:
        path = f"/api/v1/teams/?page=1&probe={tag}"  # a key of its own
        assert live.get_b(path).headers["X-Cache"] == "MISS"
        time.sleep(1.3)
        return live.get_b(path).headers["X-Cache"] == "MISS"

    assert not expires_within_a_second_and_a_bit("before")  # 300 s by default
    marker = live.start_probe("reader", {"reader": "cache_ttl_seconds"}, 1)
    changed_at = live.change("cache.ttl_seconds", 1)
    time.sleep(WITHIN - 0.1)
    # Stored 0.9 s after the change, the entry already lives 1 s: the change was live by then.
    assert expires_within_a_second_and_a_bit("after")
    outcome = wait_for(lambda: _read(marker), timeout=30, message="the probe on the cluster to finish")
    assert outcome["matched"] and outcome["seen_at"] - changed_at <= WITHIN


def test_scoring_model(live):
    live.change("flags.new_scoring", {"enabled": True, "tenants": ["lakers"]})
    classic = _averages(live)
    per_36 = round((20 * 1.0 + 6 * 1.2 + 5 * 1.5) * 36 / 30, 6)
    assert classic["model"] == "classic"
    assert_live(
        live, change=lambda: live.change("scoring.model", "new", as_tenant=True),
        web=lambda: {k: v for k, v in _averages(live).items() if k != "seasons"},
        web_expected={"model": "new", "score": per_36},
        probe="averages", arguments={"player": live.player}, probe_expected={"model": "new", "score": per_36},
    )


@pytest.mark.parametrize("statistic", ["points", "rebounds", "assists"])
def test_scoring_weights(live, statistic):
    per_game = {"points": 20, "rebounds": 6, "assists": 5}
    weights = {"points": 1.0, "rebounds": 1.2, "assists": 1.5, statistic: 3.0}
    expected = round(sum(per_game[name] * weight for name, weight in weights.items()), 6)
    assert_live(
        live, change=lambda: live.change(f"scoring.weights.{statistic}", 3.0, as_tenant=True),
        web=lambda: _averages(live)["score"], web_expected=expected,
        probe="averages", arguments={"player": live.player}, probe_expected={"model": "classic", "score": expected},
    )


def test_flags_new_scoring(live):
    live.change("scoring.model", "new", as_tenant=True)  # asked for, not yet allowed
    assert_live(
        live, change=lambda: live.change("flags.new_scoring", {"enabled": True, "tenants": ["lakers"]}),
        web=lambda: _averages(live)["model"], web_expected="new",
        probe="reader", arguments={"reader": "new_scoring_enabled"}, probe_expected=True,
    )


def test_experiment_kill_switch(live):
    """experiments.<name>: the kill switch sends a tenant pinned to a variant back to the control everywhere."""
    spec = {"enabled": True, "control": "classic", "variants": {"classic": 50, "wide": 50},
            "overrides": {"lakers": "wide"}}
    live.change("experiments.score_card", spec)
    wait_for(lambda: live.get_b("/api/v1/config/").json()["experiments"].get("score_card") == "wide", timeout=10,
             message="web B to see the experiment")

    def kill() -> float:
        response = httpx.post(f"{live.web_a}/api/v1/config/experiments/score_card/switch/", json={"enabled": False},
                              headers={"Host": "localhost"}, auth=("operator", PASSWORD), timeout=30)
        assert response.status_code == 200 and response.json()["enabled"] is False, response.text
        return time.time()

    assert_live(
        live, change=kill,
        web=lambda: live.get_b("/api/v1/config/").json()["experiments"].get("score_card"), web_expected="classic",
        probe="variant", arguments={"name": "score_card"}, probe_expected="classic",
    )


def test_branding_welcome_message(live):
    def heading():
        page = live.get_b("/admin/", auth="session").text
        return page.split("<h1>", 1)[1].split("</h1>", 1)[0] if "<h1>" in page else None

    assert_live(
        live, change=lambda: live.change("branding.welcome_message", "Showtime, coach", as_tenant=True),
        web=heading, web_expected="Showtime, coach",
        probe="reader", arguments={"reader": "welcome_message"}, probe_expected="Showtime, coach",
    )


def test_reports_default_season(live):
    assert_live(
        live, change=lambda: live.change("reports.default_season", "2024-25", as_tenant=True),
        web=lambda: _averages(live)["seasons"], web_expected=["2024-25"],
        probe="reader", arguments={"reader": "reports_default_season"}, probe_expected="2024-25",
    )


def test_reports_max_rows(live):
    from tenants.models import Tenant, UsageDay

    lakers = Tenant.objects.get(schema_name="lakers")
    for offset in range(1, 4):  # three past days in the ledger, besides today's
        UsageDay.objects.create(tenant=lakers, date=dt.date.today() - dt.timedelta(days=offset))

    def web():  # the tenant's own view of its settings, through web B
        keys = live.get_b("/api/v1/config/").json()["keys"]
        return {row["key"]: row["value"] for row in keys}["reports.max_rows"]

    assert_live(
        live, change=lambda: live.change("reports.max_rows", 2, as_tenant=True), web=web, web_expected=2,
        probe="reader", arguments={"reader": "reports_max_rows"}, probe_expected=2,
    )
    # And the export itself, submitted through web B and run on the cluster, is refused past the cap.
    submitted = httpx.post(f"{live.web_b}/api/v1/tasks/runs/", json={"name": "tenants.export_usage_report"},
                           headers={"Host": tenant_host("lakers")}, auth=("coach", PASSWORD), timeout=30)
    assert submitted.status_code == 201, submitted.text
    run_url = f"{live.web_b}/api/v1/tasks/runs/{submitted.json()['id']}/"

    def finished():
        run = httpx.get(run_url, headers={"Host": tenant_host("lakers")}, auth=("coach", PASSWORD), timeout=30).json()
        return run if run["status"] in ("succeeded", "failed", "cancelled") else None

    run = wait_for(finished, timeout=60, message="the export to finish on the cluster")
    assert run["status"] == "failed" and "reports.max_rows (2)" in run["error"]


def test_two_web_servers_never_over_admit_the_burst_limit(live):
    from concurrent.futures import ThreadPoolExecutor

    live.change("api.rate_limit_per_minute", 10, tenant="lakers")
    time.sleep(0.3)  # both servers have dropped their snapshots (see the tests above)
    left = 60 - (time.time() % 60)
    if left < 15:  # windows are UTC minutes: keep the burst inside one
        time.sleep(left + 0.2)

    def call(index):
        base = live.web_a if index % 2 else live.web_b
        return httpx.get(f"{base}/api/v1/teams/", timeout=60,
                         headers={"Host": tenant_host("lakers"), "Authorization": f"Api-Key {live.api_key}"})

    from tenants.models import UsageDay

    # Calls already made in this minute (the fixture's warm-up) count against the same limit.
    today = UsageDay.objects.filter(tenant__schema_name="lakers", date=dt.datetime.now(dt.UTC).date()).first()
    minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    used = today.burst_calls if today is not None and today.burst_window_start == minute else 0
    with ThreadPoolExecutor(max_workers=20) as pool:
        statuses = [r.status_code for r in pool.map(call, range(40))]
    assert (statuses.count(200), statuses.count(429)) == (10 - used, 30 + used)
