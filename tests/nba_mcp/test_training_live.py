"""Long work as tasks through MCP: train_points_model on a real qcluster, reached by the SDK's client.

The mcp_serve process submits to the queue of a real `manage.py qcluster` (the ORM broker, a queue of
its own per test); the client waits with a progress callback, cancels, disconnects and asks later.
"""

from __future__ import annotations

import anyio
import pytest
from django_tenants.utils import schema_context

from tests.nba_mcp.conftest import host, mcp_session, start_mcp_serve
from tests.tasks.conftest import ClusterProcess, make_stat_lines, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cluster(django_db_setup, tmp_path):
    """A qcluster on a queue of its own, not started: a test starts it when it wants runs to run."""
    proc = ClusterProcess(broker="orm", log_dir=tmp_path)
    proc.__enter__()
    yield proc
    proc.__exit__(None, None, None)


@pytest.fixture
def server(cluster):
    """An mcp_serve process that submits to the cluster's queue (the same Q_CLUSTER name and broker)."""
    env = {"TASKS_QUEUE_NAME": cluster.name, "REDIS_URL": None}
    proc = start_mcp_serve("--no-register", env=env)
    yield proc
    proc.stop()


def run_of(run_id):
    from tasks.models import TaskRun

    return TaskRun.objects.get(pk=run_id)


def test_training_streams_progress_and_a_disconnected_client_reads_its_run_later(server, cluster, leagues):
    from league.models import StatModel
    from tasks.models import Priority

    _, lakers_key = leagues["lakers"]
    _, warriors_key = leagues["warriors"]
    with schema_context("lakers"):  # minutes that vary (the league fixture's are all 30: a singular fit)
        make_stat_lines(games=8, seed=1)
    answers = {}

    async def submit_and_leave():
        async with mcp_session(server.url, host=host("lakers"), key=lakers_key) as session:
            answers["left"] = await session.call_tool("train_points_model", {"name": "left-early", "wait_seconds": 0})

    anyio.run(submit_and_leave)
    left = answers["left"].structured_content
    assert not answers["left"].is_error and left["status"] == "queued" and left["finished"] is False
    assert run_of(left["run_id"]).tenant.schema_name == "lakers"

    cluster.start()
    progress = []

    async def later():
        async with mcp_session(server.url, host=host("lakers"), key=lakers_key) as session:
            for _ in range(300):  # a new session (a reconnected client) asks by id until the run is done
                state = (await session.call_tool("training_run_state", {"run_id": left["run_id"]})).structured_content
                if state["finished"]:
                    break
                await anyio.sleep(0.1)
            answers["later"] = state

            async def on_progress(value, total, message):
                progress.append((value, total, message))

            answers["waited"] = await session.call_tool(
                "train_points_model", {"name": "waited", "window_games": 2, "priority": "high"},
                progress_callback=on_progress)
        async with mcp_session(server.url, host=host("warriors"), key=warriors_key) as session:
            answers["other_state"] = await session.call_tool("training_run_state", {"run_id": left["run_id"]})
            answers["other_cancel"] = await session.call_tool("cancel_training_run", {"run_id": left["run_id"]})

    anyio.run(later)
    assert answers["later"]["status"] == "succeeded", answers["later"]["error"]
    assert answers["later"]["result"]["samples"] == 6 + 4 * 7
    waited = answers["waited"].structured_content
    assert not answers["waited"].is_error and waited["status"] == "succeeded" and waited["progress"] == 1.0
    assert waited["priority"] == "high" and run_of(waited["run_id"]).priority == Priority.HIGH
    # Progress came while the call waited: from the queued run to the model saved, never going back.
    assert len(progress) >= 2, progress
    assert progress[0][0] < 1.0 and progress[-1][:2] == (1.0, 1.0) and "Saved" in progress[-1][2]
    assert [value for value, _, _ in progress] == sorted(value for value, _, _ in progress)
    with schema_context("lakers"):
        assert set(StatModel.objects.values_list("name", flat=True)) >= {"left-early", "waited"}
        assert StatModel.objects.get(name="waited").metrics["task_run"] == waited["run_id"]
    with schema_context("warriors"):
        assert not StatModel.objects.exists()
    # Another tenant's key never sees, nor cancels, the Lakers' run.
    for answer in (answers["other_state"], answers["other_cancel"]):
        assert answer.is_error and answer.structured_content["error"]["code"] == "not_found"
    assert run_of(left["run_id"]).status == "succeeded"


def test_an_mcp_cancellation_cancels_the_task_run(server, cluster, leagues):
    from tasks.models import TaskRun

    _, key = leagues["lakers"]
    seen = []

    async def cancel_while_waiting():
        async with mcp_session(server.url, host=host("lakers"), key=key) as session:
            got_progress = anyio.Event()

            async def on_progress(value, total, message):
                seen.append(message)
                got_progress.set()

            async with anyio.create_task_group() as group:
                async def call():
                    await session.call_tool("train_points_model", {"name": "never"}, progress_callback=on_progress)

                group.start_soon(call)
                with anyio.fail_after(60):
                    await got_progress.wait()
                group.cancel_scope.cancel()  # the SDK's client sends notifications/cancelled
            await anyio.sleep(0.5)

    anyio.run(cancel_while_waiting)
    assert seen and seen[0].startswith("queued")
    run = wait_for(lambda: TaskRun.objects.filter(arguments__name="never", status="cancelled").first(),
                   timeout=20, message="the run to be cancelled")
    assert run.tenant.schema_name == "lakers" and "MCP cancellation" in run.error
    cluster.start()  # a worker now: the cancelled run never runs
    import time

    time.sleep(2)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.attempts == 0
