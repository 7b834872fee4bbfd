"""Fixtures of the task-queue tests: a real `manage.py qcluster` subprocess against the test database.

The cluster's settings are handed to this process too (override_settings of
Q_CLUSTER), since our layer reads them at call time: both sides use the same
queue name, broker and Redis prefix, unique per test run so parallel runs on
one machine never share a queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.test import override_settings

ROOT = Path(__file__).resolve().parents[2]
REDIS_TEST_URL = os.environ.get("TASKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
STARTUP_SECONDS = 60


def database_url() -> str:
    """A DATABASE_URL for the test database this process uses (socket or TCP host)."""
    from tests.conftest import database_url as shared_database_url

    return shared_database_url()


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


def wait_for(predicate, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll until predicate() is truthy; fail the test after `timeout` seconds (every wait is bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"Timed out after {timeout} s waiting for {message}.")
        time.sleep(interval)


class ClusterProcess:
    """A `manage.py qcluster` subprocess in its own process group; stop() ends the whole group."""

    def __init__(self, *, broker: str, workers: int = 2, lease_grace: int = 10, log_dir: Path, timeout: int = 300,
                 retry: int = 360):
        self.broker = broker
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.q_cluster = {
            "name": "courtside", "cluster_name": self.name, "workers": workers, "timeout": timeout, "retry": retry,
            "max_attempts": 0,
            "ack_failures": True, "save_limit": -1, "catch_up": False, "poll": 0.05, "queue_limit": workers,
            "bulk": 1, "orm": "default", "broker_class": "tasks.engine.orm_broker.PriorityORMBroker",
            "lease_grace": lease_grace, "label": "Task cluster",
        }
        self.env = {
            **os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "tests.tasks.cluster_settings",
            "TASKS_QUEUE_NAME": self.name, "Q_WORKERS": str(workers), "Q_POLL": "0.05",
            "Q_QUEUE_LIMIT": str(workers), "TASKS_LEASE_GRACE": str(lease_grace), "CONN_MAX_AGE": "60",
            "PYTHONUNBUFFERED": "1", "TEST_Q_TIMEOUT": str(timeout), "TEST_Q_RETRY": str(retry),
        }
        self.env.pop("REDIS_URL", None)
        if broker == "redis":
            self.q_cluster.update({"redis": REDIS_TEST_URL,
                                   "broker_class": "tasks.engine.redis_broker.PriorityRedisBroker",
                                   "redis_prefix": f"courtside-test-{self.name}"})
            self.env.update({"REDIS_URL": REDIS_TEST_URL, "TASKS_REDIS_PREFIX": f"courtside-test-{self.name}"})
        self.log_path = log_dir / f"qcluster-{self.name}.log"
        self.process: subprocess.Popen | None = None
        self._override = override_settings(Q_CLUSTER=self.q_cluster)

    def __enter__(self):
        self._override.enable()
        return self

    def __exit__(self, *exc):
        self.stop()
        self._override.disable()
        if self.broker == "redis":
            self._purge_redis()

    def start(self):
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=self.env, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(lambda: b"running." in self.log_path.read_bytes() or self.process.poll() is not None,
                 timeout=STARTUP_SECONDS, message="the cluster to start")
        if self.process.poll() is not None:
            raise AssertionError(f"qcluster exited with {self.process.returncode}:\n{self.log_tail()}")
        return self

    def restart(self):
        self.stop()
        return self.start()

    def worker_pids(self) -> set[int]:
        import psutil

        try:
            return {child.pid for child in psutil.Process(self.process.pid).children(recursive=True)}
        except psutil.NoSuchProcess:
            return set()

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            # SIGTERM to the leader only: it stops its sentinel, which stops the pool in order.
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        except ProcessLookupError:
            pass
        finally:
            # Whatever of the group outlived its leader (workers are children of the sentinel).
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._log.close()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _purge_redis(self):
        import redis

        client = redis.Redis.from_url(REDIS_TEST_URL)
        keys = list(client.scan_iter(match=f"courtside-test-{self.name}:*"))
        if keys:
            client.delete(*keys)


ORM_BROKER = "tasks.engine.orm_broker.PriorityORMBroker"
REDIS_BROKER = "tasks.engine.redis_broker.PriorityRedisBroker"


def use_broker(settings, kind: str, *, name: str, **q_cluster):
    """This process's broker: `kind` ("orm" or "redis") on a queue `name` of its own, whatever REDIS_URL says.

    The settings follow the environment (REDIS_URL picks the Redis broker, keys under the deployment's prefix);
    a test of one broker names it here, so it asserts the same with REDIS_URL set or not, and its Redis keys
    (db 11 by default, TASKS_TEST_REDIS_URL) are its own. Skips "redis" where no Redis answers.
    """
    from tasks.engine.broker import get_task_broker

    cluster = {**settings.Q_CLUSTER, **q_cluster, "cluster_name": name, "broker_class": ORM_BROKER}
    cluster.pop("redis", None)
    cluster.pop("redis_prefix", None)
    if kind == "redis":
        if not redis_available():
            pytest.skip(f"No Redis at {REDIS_TEST_URL}")
        cluster.update({"redis": REDIS_TEST_URL, "redis_prefix": f"courtside-test-{name}",
                        "broker_class": REDIS_BROKER})
    settings.Q_CLUSTER = cluster
    return get_task_broker()


@pytest.fixture
def orm_broker(settings):
    """The priority ORM broker on the test database, on a queue of its own (packages are QueueMessage rows)."""
    instance = use_broker(settings, "orm", name=f"orm-{uuid.uuid4().hex[:10]}")
    yield instance
    instance.purge_queue()


@pytest.fixture(scope="module", params=["orm", "redis"])
def cluster(request, django_db_setup, tmp_path_factory):
    """One running cluster per module and broker; Redis only where a Redis answers."""
    if request.param == "redis" and not redis_available():
        pytest.skip(f"No Redis at {REDIS_TEST_URL}")
    with ClusterProcess(
        broker=request.param, log_dir=tmp_path_factory.mktemp("qcluster")
    ) as proc:
        proc.start()
        yield proc


@pytest.fixture
def cluster_factory(django_db_setup, tmp_path):
    """Start clusters inside a test (for restarts and faults); every one is stopped at the end."""
    started: list[ClusterProcess] = []

    def factory(**kwargs) -> ClusterProcess:
        proc = ClusterProcess(log_dir=tmp_path, **kwargs)
        proc.__enter__()
        started.append(proc)
        return proc

    yield factory
    for proc in reversed(started):
        proc.__exit__(None, None, None)


def make_stat_lines(*, games: int = 8, seed: int = 0) -> int:
    """A tiny league in the current schema: 2 teams, 4 players, `games` games with consistent box scores."""
    import datetime as dt
    import random

    from league.models import Game, Player, PlayerGameStat, Team

    rng = random.Random(seed)
    home = Team.objects.create(nba_id=1, abbreviation="AAA", full_name="Alpha", nickname="A", city="A",
                               year_founded=1950)
    away = Team.objects.create(nba_id=2, abbreviation="BBB", full_name="Beta", nickname="B", city="B",
                               year_founded=1960)
    players = [Player.objects.create(nba_id=10 + i, last_name=f"P{i}", full_name=f"Player {i}", is_active=True,
                                     team=home if i % 2 else away) for i in range(4)]
    count = 0
    for g in range(games):
        game = Game.objects.create(season="2025-26", date=dt.date(2025, 10, 21) + dt.timedelta(days=g),
                                   home_team=home, away_team=away)
        for player in players:
            fgm = rng.randint(1, 10)
            PlayerGameStat.objects.create(game=game, player=player, team=player.team, minutes=rng.randint(10, 40),
                                          field_goals_made=fgm, field_goals_attempted=fgm + rng.randint(0, 5),
                                          points=2 * fgm)
            count += 1
    return count
