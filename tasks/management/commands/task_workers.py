"""Worker health: each cluster worker's pid, state, last heartbeat and tasks done (the admin's Workers page)."""

from django.core.management.base import BaseCommand
from django.utils import timezone

from tasks import selectors


class Command(BaseCommand):
    help = ("List the task cluster's worker processes as their heartbeats tell: host, pid, cluster, state (Running "
            "a task, Idle, Not heartbeating for N s, or how it ended), seconds since the last heartbeat, tasks done "
            "and the run it holds. Live workers only unless --all.")

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Ended workers too (recycled, stopped, lost).")
        parser.add_argument("--limit", type=int, default=100, help="At most this many rows (default 100).")

    def handle(self, *args, all=False, limit=100, **options):
        now = timezone.now()
        workers = list(selectors.worker_list(live=None if all else True)[: max(1, limit)])
        if not workers:
            self.stdout.write("No worker has recorded itself." if all else "No live worker (try --all).")
            return
        for worker in workers:
            state = selectors.worker_state(worker, now=now)
            line = (f"{worker.host:20} {worker.pid:>7} {worker.cluster:14} {state:40} "
                    f"beat {selectors.worker_heartbeat_age(worker, now=now):7.1f} s ago  done {worker.tasks_done:>6}"
                    f"  {'run ' + str(worker.current_run_id) if worker.current_run_id else ''}")
            healthy = worker.ended_at is None and selectors.worker_heartbeating(worker, now=now)
            self.stdout.write(line if healthy or worker.ended_at else self.style.ERROR(line))
        live = [w for w in workers if w.ended_at is None]
        beating = sum(selectors.worker_heartbeating(w, now=now) for w in live)
        self.stdout.write(f"{len(live)} live worker(s), {beating} heartbeating")
