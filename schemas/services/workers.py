"""A rollout's workers: a fork pool, or threads where no child process may start."""

from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from collections import defaultdict

from django.db import connection, connections

from schemas import selectors
from schemas.executor import SchemaMigrator, set_worker_migrator, worker_run


def default_workers() -> int:
    # Twice the cores: a worker spends about half its time waiting for PostgreSQL's round trips.
    return max(1, min(2 * (os.cpu_count() or 1), 8))


def _run_parallel(migrator, todo: list[str], workers: int | None):
    """Yield each schema's result; a fork pool of workers, each with its own database connection."""

    workers = min(workers or default_workers(), len(todo))
    if workers <= 1 or len(todo) <= 1:
        for name in todo:
            yield migrator.run(name)
        return
    if multiprocessing.current_process().daemon:
        # A daemonic process (a django-q2 worker: a rollout started from the admin) may not have children.
        yield from _run_threads(migrator, todo, workers)
        return
    # Render the common project state once here: forked workers inherit it.
    counts: dict[frozenset, int] = defaultdict(int)
    applied_by_schema = selectors.applied_migrations_by_schema(todo)
    for name in todo:
        counts[frozenset(applied_by_schema[name])] += 1
    migrator.warm(set(max(counts, key=counts.get)))
    set_worker_migrator(migrator)
    # Forked children must open their own connections, never share the parent's socket.
    connections.close_all()
    context = multiprocessing.get_context("fork")
    chunksize = max(1, min(16, len(todo) // (workers * 8) or 1))
    with context.Pool(workers) as pool:
        try:
            yield from pool.imap_unordered(worker_run, todo, chunksize=chunksize)
            # Every result is in: let the workers exit on their own. The context's terminate() could SIGTERM a
            # worker holding the task queue's lock while the pool starts a replacement that then waits on that
            # lock forever (the pool never joined: seen twice over 1,000 schemas, a pool per data batch).
            pool.close()
            pool.join()
        finally:
            set_worker_migrator(None)


def _run_threads(migrator, todo: list[str], workers: int):
    """Yield each schema's result from `workers` threads, each with its own migrator and database connection.

    Used where no child process may be started. A migration spends most of its
    time waiting for PostgreSQL, so threads still overlap well; each thread
    loads its own graph because a migrator's loader is not shared safely.
    """
    results: queue.Queue = queue.Queue()
    shares = [todo[i::workers] for i in range(workers)]

    def work(names: list[str]) -> None:
        left = list(names)
        try:
            own = SchemaMigrator(targets=migrator.targets, by=migrator.by, rollout_id=migrator.rollout_id)
            while left:
                results.put(own.run(left[0]))  # run() reports a schema's own failure itself
                left.pop(0)
        except Exception as error:  # noqa: BLE001  the thread itself broke: its remaining schemas fail, reported
            for name in left:
                results.put({"schema": name, "status": "failed", "applied": [], "error": f"worker thread: {error}"})
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=work, args=(share,), name=f"rollout-{i}", daemon=True)
               for i, share in enumerate(shares)]
    for thread in threads:
        thread.start()
    for _ in todo:
        yield results.get()
    for thread in threads:
        thread.join()
