"""Plain django-q2 task functions for the tenant-context tests (called by a real cluster subprocess)."""

import os
from pathlib import Path

from django.db import connection


def switch_schema_and_stay(schema_name: str, marker: str) -> str:
    """Misbehave on purpose: move the worker's connection to a tenant schema and leave it there."""
    connection.set_schema(schema_name)
    Path(marker).write_text(str(os.getpid()))
    return schema_name


def report_schema(marker: str) -> str:
    """Write 'pid schema' to a file: which schema a plain task started in."""
    Path(marker).write_text(f"{os.getpid()} {connection.schema_name}")
    return connection.schema_name


def create_team_here(nba_id: int) -> str:
    """Create a Team in whatever schema the task runs in."""
    from league.models import Team

    Team.objects.create(nba_id=nba_id, abbreviation="TST", full_name="Test Team", nickname="Testers",
                        city="Nowhere", year_founded=2000)
    return connection.schema_name


def large_result(marker: str, size: int) -> str:
    """A result larger than a pipe holds (64 KiB on Linux): written to the monitor in more than one write."""
    Path(marker).write_text(str(os.getpid()))
    return "x" * size


def die_holding_the_workers_timer_lock() -> None:
    """Die as a worker would if SIGKILLed inside django-q2's per-worker timer lock (held around each result)."""
    import multiprocessing
    import signal

    timer = multiprocessing.current_process()._args[2]  # django_q.worker.worker(task_queue, result_queue, timer, ...)
    timer.get_lock().acquire()
    os.kill(os.getpid(), signal.SIGKILL)
