"""Show one task run, or the latest runs."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tasks import selectors
from tasks.models import PUBLIC_STATUSES, Priority, Status, TaskRun


class Command(BaseCommand):
    help = "Show a task run (with its attempts) by id, or list the latest runs with optional filters."

    def add_arguments(self, parser):
        parser.add_argument("run_id", nargs="?", help="A task run id.")
        parser.add_argument("--status", choices=PUBLIC_STATUSES)
        parser.add_argument("--tenant", default="", help="Only this schema's runs.")
        parser.add_argument("--limit", type=int, default=20)

    def handle(self, *args, **options):
        if options["run_id"]:
            try:
                run = selectors.task_run_get(tenant=None, run_id=options["run_id"])
            except (TaskRun.DoesNotExist, ValidationError):
                raise CommandError(f"No task run {options['run_id']}.") from None
            style = {Status.SUCCEEDED: self.style.SUCCESS, Status.FAILED: self.style.ERROR}.get(
                run.status, self.style.WARNING)
            self.stdout.write(style(f"{run.pk} {run.name}: {run.get_status_display()}"))
            self.stdout.write(f"  schema {run.schema_name}, priority {Priority(run.priority).name}, "
                              f"progress {run.progress:.0%} {run.progress_message}")
            self.stdout.write(f"  attempts {run.attempts} (lost {run.lost_attempts}), max retries {run.max_retries}")
            for attempt in run.attempt_log.all():
                self.stdout.write(f"  #{attempt.number} {attempt.outcome} {attempt.started_at:%H:%M:%S} "
                                  f"{attempt.error[:120]}")
            if run.result is not None:
                self.stdout.write(f"  result: {run.result}")
            if run.error:
                self.stdout.write(self.style.ERROR(f"  error: {run.error[:500]}"))
            return
        runs = selectors.task_run_list(status=options["status"], schema_name=options["tenant"] or None)
        for run in runs[: options["limit"]]:
            self.stdout.write(f"{run.pk} {run.name:36} {run.schema_name:12} {Priority(run.priority).name:8} "
                              f"{run.public_status:10} {run.progress:4.0%}")
