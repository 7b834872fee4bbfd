"""gunicorn's configuration for Courtside's web process (bin/run, deploy/README.md).

gthread workers: each worker process serves WEB_THREADS requests at once from
threads, so a slow request (a report, a blocking discovery query) does not
hold a whole process; WEB_CONCURRENCY processes use the cores. The
application is backoffice.wsgi:application (the heartbeat fast path in front
of Django). Prometheus metrics are kept per process in
PROMETHEUS_MULTIPROC_DIR and summed at scrape time (ops/metrics.py); a dead
worker's live gauges are dropped in child_exit.
"""

import os
import tempfile
from pathlib import Path

wsgi_app = "backoffice.wsgi:application"
bind = [f"{os.environ.get('COURTSIDE_HOST', '127.0.0.1')}:{os.environ.get('COURTSIDE_PORT', '8000')}"]
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# Longer than any request the API allows to run (a blocking discovery query waits at most 60 s).
timeout = int(os.environ.get("WEB_TIMEOUT", "75"))
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT", "20"))
keepalive = int(os.environ.get("WEB_KEEPALIVE", "5"))
# The proxy in front terminates TLS; only it may say so (X-Forwarded-Proto), from these addresses.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
# Django logs every request itself (one JSON line with its request id); gunicorn's access log stays off.
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
proc_name = "courtside-web"
# No control socket: several servers (tests, benchmarks) run on one machine under one user.
control_socket_disable = True
# Heartbeats and probes open no files; the worker tmp files live in memory where there is a /dev/shm.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None

# prometheus-client's multiprocess mode: one directory per server, emptied at start.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(tempfile.gettempdir()) / f"courtside-metrics-{os.getpid()}"))


def _clear_metrics() -> Path:
    """Only prometheus-client's own files go: the directory may be one an operator chose."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return directory


def on_starting(server):
    _clear_metrics()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    _clear_metrics()
