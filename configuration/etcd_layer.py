"""Configuration entries from an etcd prefix, one more layer of the stack, hot-reloaded by an etcd watch.

    COURTSIDE_CONFIG_ETCD_URL=http://127.0.0.1:2379     # unset: no etcd layer
    COURTSIDE_CONFIG_ETCD_PREFIX=/courtside/config/     # the default
    COURTSIDE_CONFIG_ETCD_PRIORITY=250                  # the default: above the files, below the database

A key under the prefix names a configuration key (`/courtside/config/cache.ttl_seconds`), its value is text
typed like an environment variable (YAML: `30`, `true`, `[a, b]`, `{ttl_seconds: 30}`; bounded by the one
loader, configuration/loading.py). The layer holds the prefix in memory: a thread loads it once, then follows
an etcd watch from the next revision; its version is the signature each process's listener polls (twice a
second), so a put in etcd reaches every process within a second. When etcd goes away the last values stay live
(and config.validate() says so); when it is back (the watch stream ended, or a health check every 2 s noticed a
new raft term or a failed call) the thread loads the prefix again and watches from there, so nothing written
meanwhile is missed. The thread reads the watch stream itself, so a stream that ends for any reason (etcd
killed, a balancer between here and etcd dropping the connection while etcd stays up) is noticed at once. Values
that break a schema are refused whole, the last good ones staying live, like a refused file.

The client is etcd3gw (etcd's v3 API through its gRPC gateway; etcd3 0.12 breaks on protobuf >= 4), its watch
stream read here on its session (etcd3gw's own watch iterator never ends when its stream breaks).
This module and the one line in apps.py that installs it are all an etcd layer takes (issue 15's "a new
configuration layer in at most two files").
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import socket
import threading
import time
from urllib.parse import urlsplit

import etcd3gw
import requests
from django.conf import settings

from configuration import layers, stack, validation
from configuration.models import KEY_PATTERN

logger = logging.getLogger("configuration")

DEFAULT_PREFIX = "/courtside/config/"
DEFAULT_PRIORITY = 250
_KEY = re.compile(KEY_PATTERN)
HEALTH_SECONDS = 2.0


def _setting(name: str, default: str = "") -> str:
    value = os.environ.get(f"COURTSIDE_CONFIG_ETCD_{name}")
    if value is None:
        value = getattr(settings, f"CONFIGURATION_ETCD_{name}", "") or default
    return str(value).strip()


class EtcdLayer(stack.Layer):
    """The keys under an etcd prefix, followed by a watch in a thread of this process."""

    def __init__(self, url: str, *, prefix: str = DEFAULT_PREFIX, priority: int = DEFAULT_PRIORITY,
                 name: str = "etcd"):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"COURTSIDE_CONFIG_ETCD_URL: {url!r} is not an http(s) URL of etcd")
        self.name, self.priority, self.url, self.prefix = name, priority, url, prefix
        self._client = etcd3gw.Etcd3Client(host=parts.hostname, port=parts.port or 2379, protocol=parts.scheme,
                                           timeout=5)
        self._lock = threading.Lock()
        self._values: dict[str, str] = {}  # etcd key -> raw text, as etcd holds it now
        self._version = 0  # raised on every change seen: the signature the listener polls
        self._checked = (-1, {}, ())  # (version validated, last good tree, errors)
        self._connection_error = ""
        self._thread: threading.Thread | None = None
        self._pid = None
        self._stop = threading.Event()
        self._cancel = None
        self._term = None
        self._last_health = 0.0
        self.loaded = threading.Event()  # set once the prefix has been read (tests wait on it)

    # ------------------------------------------------------------ the layer
    def tree(self, view: stack.View) -> dict:
        return self._state(view)[1]

    def errors(self, view: stack.View) -> tuple:
        errors = self._state(view)[2]
        return (*errors, self._connection_error) if self._connection_error else errors

    def signature(self):
        self._ensure_thread()
        self._check_health()
        return (self.url, self.prefix, self._version, bool(self._connection_error))

    def reset(self) -> None:
        self._checked = (-1, {}, ())

    def stop(self) -> None:
        self._stop.set()
        if self._cancel is not None:
            self._cancel()

    def _state(self, view: stack.View) -> tuple:
        self._ensure_thread()
        version, values = self._version, dict(self._values)
        checked = self._checked
        if checked[0] == version:
            return checked
        entries, errors = [], []
        for etcd_key, raw in sorted(values.items()):
            key = etcd_key[len(self.prefix):]
            if not _KEY.match(key):
                errors.append(f"etcd entry {etcd_key} refused, its name is not a dotted lowercase configuration key")
                continue
            entries.append((key, layers.parse_env_value(raw, name=f"etcd {etcd_key}")))
        tree = layers.tree_from_entries(entries)
        errors.extend(validation.validate_tree(layers.deep_merge(stack.DEFAULT.tree(view), tree), view.schemas))
        if errors:
            logger.error("configuration: the etcd layer's values refused, the previous ones stay live: %s",
                         "; ".join(errors))
            checked = (version, checked[1], tuple(errors))
        else:
            checked = (version, tree, ())
        self._checked = checked
        return checked

    # ------------------------------------------------------- the watch thread
    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
                return
            self._pid = os.getpid()  # a forked worker starts its own thread
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="courtside-config-etcd", daemon=True)
            self._thread.start()
        # The first view is built from the prefix, not from nothing (when etcd is slower than this, the
        # version raised by the load drops that view within half a second).
        self.loaded.wait(2.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch(self._load())
            except Exception as exc:  # etcd is down or restarting: keep the last values, retry
                self._fail(exc)
            self._stop.wait(0.5)

    def _watch(self, revision: int) -> None:
        """Follow the prefix from `revision + 1` until the stream ends (then the caller loads it again).

        The stream is read here rather than through etcd3gw's watch_prefix: its iterator blocks for ever when
        the stream breaks, so a connection dropped between here and etcd (a balancer's idle timeout, a proxy's
        restart) while etcd stays up with the same raft term left the layer silently stale.
        """
        body = {"create_request": {
            "key": etcd3gw.utils._encode(self.prefix),
            "range_end": etcd3gw.utils._encode(etcd3gw.utils._increment_last_byte(self.prefix)),
            "start_revision": revision + 1,
        }}
        response = self._client.session.post(self._client.get_url("/watch"), json=body, stream=True,
                                             timeout=(5, None))
        response.raise_for_status()
        self._cancel = functools.partial(_end_stream, response)
        try:
            if self._stop.is_set():
                return
            for line in response.iter_lines():
                if not line.strip():
                    continue
                result = json.loads(line).get("result", {})
                if result.get("canceled"):  # e.g. its revision compacted away: load again
                    logger.warning("configuration: etcd cancelled the layer's watch: %s",
                                   str(result.get("cancel_reason", ""))[:200])
                    return
                for event in result.get("events", []):
                    kv = event.get("kv", {})
                    self._apply({"type": event.get("type"), "kv": {
                        "key": etcd3gw.utils._decode(kv.get("key", "")),
                        "value": etcd3gw.utils._decode(kv.get("value", "")),
                    }})
        except (requests.RequestException, OSError, ValueError) as exc:  # the stream broke: load again
            logger.info("configuration: the etcd layer's watch ended (%s); loading the prefix again",
                        type(exc).__name__)
        finally:
            _end_stream(response)

    def _load(self) -> int:
        """Read the whole prefix; the revision it was read at."""
        response = self._client.post(self._client.get_url("/kv/range"), json={
            "key": etcd3gw.utils._encode(self.prefix),
            "range_end": etcd3gw.utils._encode(etcd3gw.utils._increment_last_byte(self.prefix)),
        })
        values = {_text(etcd3gw.utils._decode(kv["key"])): _text(etcd3gw.utils._decode(kv.get("value", "")))
                  for kv in response.get("kvs", [])}
        self._term = int(response.get("header", {}).get("raft_term", 0))
        with self._lock:
            if values != self._values or self._connection_error:
                self._values = values
                self._connection_error = ""
                self._version += 1
        self.loaded.set()
        return int(response.get("header", {}).get("revision", 0))

    def _apply(self, event: dict) -> None:
        key = _text(event["kv"]["key"])
        with self._lock:
            if event.get("type") == "DELETE":
                self._values.pop(key, None)
            else:
                self._values[key] = _text(event["kv"].get("value", b""))
            self._version += 1

    def _fail(self, exc: Exception) -> None:
        message = f"etcd at {self.url} unreachable ({type(exc).__name__}): its last values stay live"
        with self._lock:
            if self._connection_error != message:
                logger.warning("configuration: %s", message)
                self._connection_error = message
                self._version += 1
        self.loaded.set()

    def _check_health(self) -> None:
        """Every HEALTH_SECONDS: a restarted etcd (new raft term) or a dead one ends the watch, to load again."""
        now = time.monotonic()
        if now - self._last_health < HEALTH_SECONDS or self._cancel is None:
            return
        self._last_health = now
        try:
            status = self._client.status()
            term = int(status.get("raft_term", status.get("raftTerm", 0)))
        except Exception:
            term = None
        if term is None or (self._term is not None and term != self._term):
            cancel, self._cancel = self._cancel, None
            cancel()  # the thread's watch ends; it loads the prefix again and watches from there


def _end_stream(response) -> None:
    """End a watch stream at once: a shutdown wakes the thread blocked reading it, then the close goes through."""
    sock = getattr(getattr(response.raw, "connection", None), "sock", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()


def _text(value) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def install() -> EtcdLayer | None:
    """Add the etcd layer to the stack when COURTSIDE_CONFIG_ETCD_URL is set (apps.ready); None otherwise."""
    url = _setting("URL")
    if not url:
        return None
    try:
        priority = int(_setting("PRIORITY", str(DEFAULT_PRIORITY)))
        layer = EtcdLayer(url, prefix=_setting("PREFIX", DEFAULT_PREFIX), priority=priority)
    except ValueError as exc:
        logger.error("configuration: no etcd layer: %s", exc)
        return None
    return stack.register(layer)
