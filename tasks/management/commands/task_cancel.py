"""Cancel task runs: a queued one never starts, a running one stops at its next progress report."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tasks import actions, selectors
from tasks.models import TaskRun


class Command(BaseCommand):
    help = "Cancel task runs by id. The cancel is stored in the database and survives a cluster restart."

    def add_arguments(self, parser):
        parser.add_argument("run_ids", nargs="+", help="Task run ids.")

    def handle(self, *args, **options):
        failures = []
        for run_id in options["run_ids"]:
            try:
                run = selectors.task_run_get(tenant=None, run_id=run_id)
                run = actions.task_cancel(run=run, cancelled_by="command line")
            except (TaskRun.DoesNotExist, ValidationError) as error:
                message = f"No task run {run_id}." if isinstance(error, TaskRun.DoesNotExist) or not hasattr(
                    error, "messages") else f"{run_id}: {' '.join(error.messages)}"
                failures.append(message)
                continue
            note = "cancelled" if run.status == "cancelled" else "cancel requested (stops at its next progress report)"
            self.stdout.write(self.style.SUCCESS(f"{run.pk} {run.name}: {note}."))
        if failures:
            raise CommandError(" ".join(failures))
