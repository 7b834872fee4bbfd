"""A pre-fork WSGI server in the manner of gunicorn, to test self-registration across fork().

    python tests/registry/prefork_server.py WORKERS

The master loads the application (backoffice.wsgi) and answers one request
itself, so it has registered and runs its heartbeat thread when it forks; each
worker then serves on a port of its own and prints `worker <pid> <port>`. Each
process is its own `courtside-web` instance.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(workers: int) -> None:
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.test import RequestFactory

    from backoffice.wsgi import application

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    def serve_one_request_in_process():
        environ = RequestFactory().get("/api/v1/services/", HTTP_HOST="localhost", SERVER_PORT="").environ
        result = application(environ, lambda status, headers, exc_info=None: None)
        b"".join(result)
        getattr(result, "close", lambda: None)()

    serve_one_request_in_process()
    os.write(1, f"master {os.getpid()}\n".encode())  # one write each: workers print at once
    for _ in range(workers):
        if os.fork() == 0:
            server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler)
            server.daemon_threads = True
            server.set_app(application)
            os.write(1, f"worker {os.getpid()} {server.server_port}\n".encode())
            server.serve_forever()
            os._exit(0)
    while True:
        signal.pause()


if __name__ == "__main__":
    main(int(sys.argv[1]))
