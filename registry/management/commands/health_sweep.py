from django.core.management.base import BaseCommand, CommandError

from registry import sweeps
from tasks import actions
from tasks.models import TaskSchedule


class Command(BaseCommand):
    help = ("Run the registry's health sweep once here (the cluster runs it as a system job); --schedule puts the "
            "system schedules declared in code on the schedules page, as every migrate does.")

    def add_arguments(self, parser):
        parser.add_argument("--schedule", action="store_true",
                            help="Reconcile the system schedules (the health sweep's among them) and stop.")

    def handle(self, *args, **options):
        if options["schedule"]:
            counts = actions.system_schedules_reconcile()
            schedule = TaskSchedule.objects.filter(system=True, task_name="registry.health_sweep").first()
            if schedule is None:
                raise CommandError("The health sweep's schedule is off (SERVICES['AUTO_SCHEDULE'] is False).")
            self.stdout.write(self.style.SUCCESS(
                f"System schedules: {counts['created']} created, {counts['updated']} updated, {counts['removed']} "
                f"removed. Schedule {schedule.name!r}: {schedule.task_name} ({schedule.cron})."))
            return
        report = sweeps.health_sweep()
        self.stdout.write(self.style.SUCCESS(
            f"Probed {report.probed} check(s), {report.ttl_expired} TTL(s) expired, evicted {len(report.evicted)}, "
            f"{report.consul_expired} Consul mirror(s) unconfirmed."))
        if report.out_of_range:
            self.stdout.write(self.style.WARNING(
                f"{report.out_of_range} check(s) with out-of-range durations marked critical (see their output)."))
        for name, active in report.self_preservation.items():
            if active:
                self.stdout.write(self.style.WARNING(f"{name}: self-preservation active, nobody evicted."))
