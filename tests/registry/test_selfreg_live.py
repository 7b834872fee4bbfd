"""Courtside's own processes in its registry, as real processes: a live one stays passing while it serves no
traffic at all, a killed one turns critical within its TTL.

The web server is `manage.py runserver` (what `make run` starts) and a pre-fork server in the manner of gunicorn;
the cluster is a real `manage.py qcluster`. Their TTL is 3 s, heartbeats every 0.5 s (tests/registry/
web_settings.py, cluster_settings.py). The test process sweeps the registry every 0.2 s, as the cluster's sweep
would, so "within its TTL" is the TTL plus one sweep and a loaded machine's slack.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from registry import registration, sweeps
from registry.models import ServiceInstance
from tests.registry.conftest import sweep_schedule_due
from tests.registry.test_cluster_and_dogfood import ROOT, SCHEDULER_ONCE, _env

TTL = 3.0
SLACK = 1.5  # one sweep of the test's loop and the scheduling of a loaded machine; not a speed assertion
STARTUP_SECONDS = 60  # bounds on waiting, not assertions on speed


def _free_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def _instances(pids) -> dict[int, ServiceInstance]:
    """The registry's courtside-web/-cluster instances of these processes, by pid."""
    found = {}
    for instance in ServiceInstance.objects.filter(name__in=["courtside-web", "courtside-cluster"]):
        pid = instance.metadata.get("pid") or instance.metadata.get("sentinel_pid")
        if pid in pids:
            found[pid] = instance
    return found


def _wait_until_passing(pids, *, what: str) -> dict[int, ServiceInstance]:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        sweeps.health_sweep(probe=False)
        found = _instances(pids)
        if len(found) == len(pids) and all(i.status == "passing" for i in found.values()):
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what} never showed as passing: {list(ServiceInstance.objects.values())}")


def _stays_passing_while_idle(pids, *, seconds: float) -> None:
    """Sweep for `seconds` with no traffic at all: every instance of `pids` is passing at every sweep."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sweeps.health_sweep(probe=False)
        statuses = {pid: instance.status for pid, instance in _instances(pids).items()}
        assert statuses == dict.fromkeys(pids, "passing"), statuses
        time.sleep(0.2)


def _turns_critical_within_ttl(pid: int, killed_at: float) -> float:
    while time.monotonic() - killed_at < STARTUP_SECONDS:
        sweeps.health_sweep(probe=False)
        if _instances({pid})[pid].status == "critical":
            return time.monotonic() - killed_at
        time.sleep(0.2)
    raise AssertionError("the killed process never turned critical")


def _stop_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.django_db(transaction=True)
def test_an_idle_web_server_stays_passing_and_a_killed_one_turns_critical_within_its_ttl(public_tenant):
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"], cwd=ROOT,
        env=_env("tests.registry.web_settings"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:  # one request, then no traffic at all
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/api/v1/services/", headers={"Host": "localhost"},
                                 timeout=5).status_code == 401
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, server.stderr.read()[-3000:]
                time.sleep(0.2)
        web = _wait_until_passing({server.pid}, what="the web server")[server.pid]
        assert web.port == port and web.tags == ["courtside", "web"]

        _stays_passing_while_idle({server.pid}, seconds=2 * TTL)
        # Removed by an operator (or evicted after a long outage) while it lives: it registers itself again.
        registration.service_deregister(service_id=web.service_id)
        assert _wait_until_passing({server.pid}, what="the re-registered web server")[server.pid].service_id == \
            web.service_id

        os.kill(server.pid, signal.SIGKILL)
        assert _turns_critical_within_ttl(server.pid, time.monotonic()) <= TTL + SLACK
    finally:
        _stop_group(server)


@pytest.mark.django_db(transaction=True)
def test_each_pre_forked_worker_is_its_own_instance_and_heartbeats_by_itself(public_tenant, settings):
    # Three instances of one service: by Eureka's rule (at least 3, more than 15% lapsed) one death would look
    # like a partition and self-preservation would keep it passing. This test is about the death, not the rule.
    settings.SERVICES = {"SELF_PRESERVATION_MIN_INSTANCES": 4}
    server = subprocess.Popen(
        [sys.executable, "tests/registry/prefork_server.py", "2"], cwd=ROOT, env=_env("tests.registry.web_settings"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        master = int(server.stdout.readline().split()[1])
        workers = {}
        for _ in range(2):
            line = server.stdout.readline().split()
            assert line and line[0] == "worker", server.stderr.read()[-3000:]
            workers[int(line[1])] = int(line[2])
        for worker_port in workers.values():  # one request each, then no traffic at all
            assert httpx.get(f"http://127.0.0.1:{worker_port}/api/v1/services/", headers={"Host": "localhost"},
                             timeout=10).status_code == 401

        everyone = {master, *workers}
        found = _wait_until_passing(everyone, what="the master and both workers")
        assert len({instance.service_id for instance in found.values()}) == 3
        assert {found[pid].port for pid in workers} == set(workers.values())

        _stays_passing_while_idle(everyone, seconds=2 * TTL)

        killed, survivor = sorted(workers)
        os.kill(killed, signal.SIGKILL)
        assert _turns_critical_within_ttl(killed, time.monotonic()) <= TTL + SLACK
        assert {pid: i.status for pid, i in _instances({master, survivor}).items()} == \
            {master: "passing", survivor: "passing"}
    finally:
        _stop_group(server)


@pytest.mark.cluster
@pytest.mark.django_db(transaction=True)
def test_an_idle_cluster_stays_passing_and_a_killed_one_turns_critical_within_its_ttl(public_tenant):
    env = _env("tests.registry.cluster_settings")
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        # One scheduled health sweep (what the cluster's guard does every 30 s), then nothing to do at all.
        schedule = sweep_schedule_due()  # the system job's schedule, as the reconcile after migrate makes it
        subprocess.run([sys.executable, "-c", SCHEDULER_ONCE], cwd=ROOT, env=env, check=True, timeout=60,
                       capture_output=True)
        schedule.delete()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not ServiceInstance.objects.filter(name="courtside-cluster").exists():
            assert time.monotonic() < deadline and cluster.poll() is None, cluster.stderr.read()[-3000:]
            time.sleep(0.2)
        sentinel = ServiceInstance.objects.get(name="courtside-cluster").metadata["sentinel_pid"]
        _wait_until_passing({sentinel}, what="the cluster")

        _stays_passing_while_idle({sentinel}, seconds=2 * TTL)

        os.kill(cluster.pid, signal.SIGKILL)  # kill -9 of the qcluster process itself
        assert _turns_critical_within_ttl(sentinel, time.monotonic()) <= TTL + SLACK
    finally:
        _stop_group(cluster)


def test_a_server_bound_to_all_interfaces_registers_its_host_name(operator_client, settings):
    settings.SERVICES = {"SELF_REGISTER": True}

    operator_client.get("/admin/", SERVER_NAME="0.0.0.0")  # what gunicorn reports when bound to 0.0.0.0

    assert ServiceInstance.objects.get(name="courtside-web").host == socket.gethostname()


@pytest.mark.django_db(transaction=True)
def test_two_processes_registering_the_same_new_id_at_once_both_succeed(public_tenant):
    """Two workers of one cluster register its instance as they spawn: one creates it, the other updates it."""
    import threading

    from django.db import connections

    failures, barrier = [], threading.Barrier(2)

    def register_once(service_id):
        try:
            barrier.wait(timeout=10)
            registration.service_register(service_id=service_id, name="stats-api", host="10.0.0.1", port=8080)
        except Exception as error:  # noqa: BLE001 - collected for the assertion
            failures.append(repr(error))
        finally:
            connections.close_all()

    for round_number in range(8):
        threads = [threading.Thread(target=register_once, args=(f"stats-{round_number}",)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    assert failures == []
    assert ServiceInstance.objects.count() == 8
