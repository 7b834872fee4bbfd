"""Submit an allow-listed task from the command line."""

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from core.errors import DomainError
from tasks import actions, registry
from tasks.limits import MAX_ARGUMENTS_BYTES
from tasks.models import Priority


class Command(BaseCommand):
    help = "Submit a registered task (see --list) with JSON arguments, for a tenant or as operator work."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="Registered task name.")
        parser.add_argument("--list", action="store_true", help="List the registered tasks and exit.")
        parser.add_argument("--args", dest="task_args", default="{}",
                            help='Keyword arguments as a JSON object, e.g. \'{"days": 7}\'.')
        parser.add_argument("--tenant", default="", help="Schema name of the tenant to run for.")
        parser.add_argument("--priority", default=None, choices=[*Priority.names, *[n.lower() for n in Priority.names]])
        parser.add_argument("--countdown", type=float, default=None, help="Seconds to wait before running.")
        parser.add_argument("--run-at", default=None, help="ISO 8601 time with offset to run at.")
        parser.add_argument("--depends-on", nargs="*", default=[], help="Run ids this one waits for.")
        parser.add_argument("--run-if-dependency-fails", action="store_true")
        parser.add_argument("--max-retries", type=int, default=None)
        parser.add_argument("--timeout", type=int, default=None, help="Seconds before the attempt is stopped.")

    def handle(self, *args, **options):
        if options["list"]:
            for spec in registry.specs():
                self.stdout.write(f"{spec.name:40} [{spec.scope}] {spec.description}")
            return
        if not options["name"]:
            raise CommandError("Give a task name (or --list).")
        if len(options["task_args"]) > MAX_ARGUMENTS_BYTES:
            raise CommandError(f"--args takes at most {MAX_ARGUMENTS_BYTES} bytes of JSON.")
        try:
            arguments = json.loads(options["task_args"])
        except json.JSONDecodeError as error:
            raise CommandError(f"--args is not valid JSON: {error}") from error
        except RecursionError:
            raise CommandError("--args is nested too deep.") from None
        run_at = None
        if options["run_at"]:
            try:
                run_at = parse_datetime(options["run_at"])
            except ValueError as error:  # well formed, but no such date or time (month 13, hour 99)
                raise CommandError(f"--run-at is not a valid date and time: {error}.") from None
            if run_at is None:
                raise CommandError("--run-at must be an ISO 8601 date and time.")
        tenant = None
        if options["tenant"] and options["tenant"] != "public":
            from tenants.models import Tenant

            tenant = Tenant.objects.filter(schema_name=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant {options['tenant']!r}.")
        try:
            run = actions.task_submit(
                name=options["name"], arguments=arguments, tenant=tenant, priority=options["priority"],
                countdown=options["countdown"], run_at=run_at, depends_on=options["depends_on"],
                run_if_dependency_fails=options["run_if_dependency_fails"], max_retries=options["max_retries"],
                timeout=options["timeout"], submitted_by="command line", by_operator=True,
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        except DomainError as error:  # a quota or limit of the tenant
            raise CommandError(error.message) from error
        self.stdout.write(self.style.SUCCESS(f"Submitted {run.name} as {run.pk} ({run.get_status_display()})."))
        if options["verbosity"] > 1:
            self.stdout.write(f"priority {Priority(run.priority).name}, schema {run.schema_name}, "
                              f"timeout {run.timeout} s, max retries {run.max_retries}")
