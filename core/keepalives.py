"""TCP keepalives for the long-lived PostgreSQL sessions: a configuration LISTEN, a session advisory lock.

Both sit idle for hours by design, and a silent peer (its host gone, a dropped NAT entry) is noticed after about
IDLE + INTERVAL * COUNT = 25 s instead of the kernel's default two hours: the client's end gives up and
reconnects, the server's end ends the backend, so a dead listener stops pinning the NOTIFY queue and a dead lock
holder's advisory lock goes to the standby waiting for it.
"""

from __future__ import annotations

KEEPALIVE_IDLE_SECONDS = 10
KEEPALIVE_INTERVAL_SECONDS = 5
KEEPALIVE_COUNT = 3


def keepalive_options() -> dict:
    """psycopg.connect() keyword arguments: libpq's keepalives for the client, GUCs for the server's end."""
    return {
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_SECONDS,
        "keepalives_interval": KEEPALIVE_INTERVAL_SECONDS,
        "keepalives_count": KEEPALIVE_COUNT,
        "options": f"-c tcp_keepalives_idle={KEEPALIVE_IDLE_SECONDS} "
                   f"-c tcp_keepalives_interval={KEEPALIVE_INTERVAL_SECONDS} "
                   f"-c tcp_keepalives_count={KEEPALIVE_COUNT}",
    }
