"""Fixtures of the registry tests: tokens, token-authenticated clients, a real local HTTP server, ports."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registry import registration, selfreg, tokens
from tests.conftest import PUBLIC_HOST, TenantClient


@pytest.fixture(autouse=True)
def _fresh_self_registration_state():
    """Dogfooding keeps per-process state; every test starts from a process that registered nothing.

    A heartbeat thread a test started (the web process's, on its first request) stops with the test, so it
    never writes to the database of a later test.
    """
    saved = dict(selfreg._state)
    selfreg._state.update(web_id=None, web_last=0.0, cluster_id=None, cluster_last=0.0)
    yield
    selfreg.heartbeats_stop()
    selfreg._state.clear()
    selfreg._state.update(saved)


@pytest.fixture
def make_token(db):
    def make(service_name: str) -> str:
        return tokens.token_create(service_name=service_name)[1]

    return make


@pytest.fixture
def service_client(public_tenant, make_token):
    """A client of the operator host authenticated by a service's token, as a service would call."""

    def for_service(service_name: str) -> TenantClient:
        return TenantClient(PUBLIC_HOST, HTTP_AUTHORIZATION=f"Bearer {make_token(service_name)}")

    return for_service


def register(service_id: str, name: str = "stats-api", *, port: int = 8080, checks=None, **kwargs):
    return registration.service_register(service_id=service_id, name=name, host="10.0.0.1", port=port,
                                         checks=checks, **kwargs)


class ProbeTarget:
    """A real HTTP server on 127.0.0.1 whose answer a test switches: 200, 500, or hang past a timeout."""

    def __init__(self):
        self.mode = "ok"
        self.hang_seconds = 2.0
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                with target._lock:
                    target.requests += 1
                    target.in_flight += 1
                    target.max_in_flight = max(target.max_in_flight, target.in_flight)
                try:
                    if target.mode == "hang":
                        time.sleep(target.hang_seconds)
                    elif target.mode == "slow":
                        time.sleep(0.3)
                    code = 500 if target.mode == "error" else 200
                    body = b"ok" if code == 200 else b"boom"
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the prober gave up on us: exactly what a timeout does
                finally:
                    with target._lock:
                        target.in_flight -= 1

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/health"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def probe_target():
    target = ProbeTarget()
    yield target
    target.close()


@pytest.fixture
def open_port():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def closed_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there any more
    return port


SWEEP_TASK = "registry.health_sweep"


def sweep(budget: float = 0) -> dict:
    """One run of the health sweep's system job as the cluster runs it: a TaskRun, executed here; its result."""
    from tasks import actions
    from tasks.engine import execution
    from tasks.models import TaskRun

    run = actions.task_submit(name=SWEEP_TASK, arguments={"budget": budget}, submitted_by="test")
    outcome = execution.run_execute(run_id=run.pk)
    run = TaskRun.objects.get(pk=run.pk)
    assert (outcome, run.name, run.tenant_id) == ("succeeded", SWEEP_TASK, None), run.error
    return run.result


def sweep_schedule_due():
    """The health sweep's system schedule, reconciled as after a migrate, due now; the other system ones left out.

    Returns its django-q2 schedule, which the cluster's scheduler fires as a TaskRun of registry.health_sweep.
    """
    from django_q.models import Schedule

    from tasks import actions
    from tasks.models import TaskSchedule

    actions.system_schedules_reconcile()
    schedule = TaskSchedule.objects.select_related("q_schedule").get(name="services: health sweep")
    assert (schedule.system, schedule.task_name, schedule.cron) == (True, SWEEP_TASK, "* * * * * */30")
    q = schedule.q_schedule
    Schedule.objects.exclude(pk=q.pk).delete()  # this test is about the sweep alone
    Schedule.objects.filter(pk=q.pk).update(next_run=q.next_run.replace(year=2000))
    return q


def wait_for(predicate, *, timeout=10.0, every=0.05):
    """predicate()'s first truthy value, polled every `every` s; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not true within {timeout} s: {predicate}")


@contextlib.contextmanager
def running_mirror(url: str, *, prefix: str):
    """An etcd mirror running in a thread of this process, in sync on entry; stopped (and joined) on exit."""
    from registry.etcd import EtcdMirror

    mirror, stop = EtcdMirror(url, prefix=prefix), threading.Event()
    thread = threading.Thread(target=mirror.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert mirror.in_sync.wait(10), mirror.stats
        yield mirror
    finally:
        stop.set()
        thread.join(10)
