"""A separate process that reads one key in a loop and prints each value it sees (used by test_hot_reload).

It never re-reads the database by itself: its cache has no expiry, so a new
value can only reach it through the hot-reload path (NOTIFY -> listener thread
-> snapshot dropped -> next get() rebuilds).
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

example_keys.install()  # the tests' example keys (branding.accent_color...), as in the test process


def watch(key: str, seconds: float) -> None:
    """Print each watcher call instead of polling: the listener thread drives the callbacks."""
    config.watch(key, lambda k, old, new: print(json.dumps({"key": k, "old": old, "new": new}), flush=True))
    if not config.listener_ready(timeout=10):
        print(json.dumps({"error": "listener not ready"}), flush=True)
        return
    print(json.dumps({"ready": True, "value": config.get(key)}), flush=True)
    time.sleep(seconds)
    config.stop_listener()


def main(key: str, seconds: float) -> None:
    value = config.get(key)
    if not config.listener_ready(timeout=10):
        print(json.dumps({"error": "listener not ready"}), flush=True)
        return
    value = config.get(key)
    print(json.dumps({"ready": True, "value": value, "pid": os.getpid()}), flush=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        current = config.get(key)
        if current != value:
            value = current
            print(json.dumps({"value": value, "at": time.monotonic()}), flush=True)
        time.sleep(0.002)
    config.stop_listener()


if __name__ == "__main__":
    (watch if sys.argv[3:4] == ["watch"] else main)(sys.argv[1], float(sys.argv[2]))
