"""The etcd fixture (tests/etcd.py) starts a real etcd: put, get, a lease that expires, a watch, a restart."""

import time

from tests.etcd import etcd  # noqa: F401 - the fixture


def test_put_get_lease_watch_and_restart(etcd):  # noqa: F811
    client = etcd.client()
    client.put("/fixture/a", "1")
    assert client.get("/fixture/a") == [b"1"]

    lease = client.lease(ttl=2)
    client.put("/fixture/leased", "x", lease=lease)
    events, cancel = client.watch_prefix("/fixture/")
    client.put("/fixture/b", "2")
    first = next(events)
    assert (first["kv"]["key"], first["kv"]["value"]) == (b"/fixture/b", b"2")

    deadline = time.monotonic() + 10
    while client.get("/fixture/leased") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.get("/fixture/leased") == [], "a key on a lease nobody refreshes expires"
    cancel()

    etcd.kill()
    etcd.start()
    assert etcd.client().get("/fixture/a") == [b"1"], "a restart keeps the data dir and the ports"
