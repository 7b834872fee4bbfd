"""The rehearsal's observer: each process says, in a shared log, when it first holds each new configuration value.

One JSON line per event, appended with one write (O_APPEND: lines of many
processes never interleave): {"pid", "group", "at", "listening"} once the
process's configuration listener is connected, then {"pid", "group", "at",
"key", "value"} each time its store sees the watched key change. `group` is
the process group, which the rehearsal started (one per web server and per
cluster), so a line names the server it came from. `at` is the wall clock,
comparable with the rehearsal's own.
"""

from __future__ import annotations

import json
import os
import threading
import time

from django.apps import AppConfig

KEY = "api.page_size"


def _write(**fields) -> None:
    path = os.environ.get("REHEARSAL_OBSERVER_LOG")
    if not path:
        return
    line = json.dumps({"pid": os.getpid(), "group": os.getpgid(0), "at": time.time(), **fields}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _seen(key, before, after) -> None:
    _write(key=key, value=after)


_watching = threading.Event()


def _listen() -> None:
    """Watch the key (unless this process inherited the watcher), listen, and say so: on a thread of its own,
    so neither AppConfig.ready nor a fork waits on the database."""

    def announce():
        from django.db import connections

        from configuration import config

        if not _watching.is_set():
            config.watch(KEY, _seen)  # its baseline: the value this process starts from
            _watching.set()
            connections["default"].close()
        if config.listener_ready(timeout=30):
            _write(listening=True)

    threading.Thread(target=announce, name="rehearsal-observer", daemon=True).start()


class ObserverConfig(AppConfig):
    name = "tests.rehearsal"
    label = "rehearsal_observer"

    def ready(self) -> None:
        if not os.environ.get("REHEARSAL_OBSERVER_LOG"):
            return
        _listen()
        # A forked child (a cluster's sentinel, pusher, monitor, workers) keeps the watcher but not the listener.
        os.register_at_fork(after_in_child=_listen)
