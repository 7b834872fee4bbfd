"""TCP sockets of the test run as the kernel shows them (ss from iproute2): their keepalive timers."""

from __future__ import annotations

import re
import subprocess
import time


def keepalive_seconds(filter_expression: str, patience: float = 5.0) -> float | None:
    """The keepalive timer of the one established socket matching the ss filter, in seconds (None: no keepalive).

    ss shows one timer per socket: while sent data waits for its ACK it is the retransmission timer
    (`timer:(on,200ms,0)`, seen on the server's end after it sent a notification or a query's answer, longer when
    the cores are busy), and the keepalive timer shows again once the socket is idle. So look again for a while
    before calling a socket keepalive-less."""
    deadline = time.monotonic() + patience
    while True:
        out = subprocess.run(["ss", "-tnoH", "state", "established", filter_expression], capture_output=True,
                             text=True, check=True).stdout
        match = re.search(r"timer:\(keepalive,([^,]+),", out)
        if match or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if not match:
        return None
    seconds = 0.0
    for amount, unit in re.findall(r"([\d.]+)(min|sec|ms)", match.group(1)):
        seconds += float(amount) * {"min": 60, "sec": 1, "ms": 0.001}[unit]
    return seconds
