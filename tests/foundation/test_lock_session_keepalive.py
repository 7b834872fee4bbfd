"""A session lock's connection notices a silent peer within a minute, on both ends.

A lock holder cut off by the network (its host gone, a dropped NAT entry) keeps its PostgreSQL session, and so
its advisory lock, until TCP notices: by the kernel's default two hours later. Standbys (the etcd mirror's,
a rollout waiting for the lock) would wait that long. Runs where the test database is reached over TCP
(CI's DATABASE_URL pass); on the embedded server's Unix socket there is no keepalive to have.
"""

from __future__ import annotations

import socket

import pytest
from django.db import connection

from core.locks import session_connection
from tests.sockets import keepalive_seconds

pytestmark = pytest.mark.django_db


def test_a_lock_session_has_tcp_keepalives_on_both_ends():
    with session_connection(application_name="courtside-lock-keepalive-test") as session:
        descriptor = socket.socket(fileno=session.pgconn.socket)
        try:
            if descriptor.family == socket.AF_UNIX:
                pytest.skip("the test database is reached on a Unix socket: no TCP, no keepalive")
            port = descriptor.getsockname()[1]
        finally:
            descriptor.detach()
        client = keepalive_seconds(f"( sport = :{port} )")
        server = keepalive_seconds(f"( dport = :{port} )")
        with connection.cursor() as cursor:  # the server's own view of the session's settings
            cursor.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                           ["courtside-lock-keepalive-test"])
            assert cursor.fetchone(), "the lock session is not on the test database's server"
        idle = session.execute("SHOW tcp_keepalives_idle").fetchone()[0]
    assert client is not None and client <= 60, f"client end keepalive timer: {client}"
    assert server is not None and server <= 60, f"server end keepalive timer: {server}"
    assert idle in {"10", "10s"}, f"the server's tcp_keepalives_idle for the session: {idle}"
