from django.core.management.base import BaseCommand

from registry import sweeps


class Command(BaseCommand):
    help = "Run the registry's health sweep once here (the cluster runs it on its schedule); --schedule ensures that."

    def add_arguments(self, parser):
        parser.add_argument("--schedule", action="store_true", help="Create the django-q2 schedules and stop.")

    def handle(self, *args, **options):
        if options["schedule"]:
            schedule = sweeps.health_schedule_ensure()
            self.stdout.write(self.style.SUCCESS(f"Schedule {schedule.name!r}: {schedule.func} ({schedule.cron})."))
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
