"""A separate process for tests/configuration/test_listener_*.py: reads or watches one key, prints what it sees.

    python _listener_child.py KEY SECONDS poll|watch

poll: reads the key in a loop, printing each new value with the monotonic time it was seen (its cache has no
expiry, so a new value can only reach it through the listener). watch: registers a watcher and prints each call,
with the time. The first line is {"ready": true, "value": ..., "pid": ...} once the listener listens.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "backoffice.settings.test")

import django  # noqa: E402

django.setup()

from configuration.conf import config  # noqa: E402
from tests.configuration import example_keys  # noqa: E402

example_keys.install()


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def main(key: str, seconds: float, mode: str) -> None:
    if mode == "watch":
        config.watch(key, lambda k, old, new: emit(key=k, old=old, new=new, at=time.monotonic()))
    value = config.get(key)
    if not config.listener_ready(timeout=10):
        emit(error="listener not ready")
        return
    value = config.get(key)
    emit(ready=True, value=value, pid=os.getpid())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if mode == "poll":
            current = config.get(key)
            if current != value:
                value = current
                emit(value=value, at=time.monotonic())
        time.sleep(0.002)
    config.stop_listener()


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), sys.argv[3])
