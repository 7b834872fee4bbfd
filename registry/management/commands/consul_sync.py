from django.core.management.base import BaseCommand, CommandError

from registry import conf
from registry.consul import ConsulClient, ConsulError, consul_sync


class Command(BaseCommand):
    help = "Two-way sync with a Consul agent: push our instances and checks, pull its catalog (source=consul)."

    def add_arguments(self, parser):
        parser.add_argument("--url", help="Consul agent URL (default: SERVICES['CONSUL_URL']).")
        parser.add_argument("--push-only", action="store_true")
        parser.add_argument("--pull-only", action="store_true")

    def handle(self, *args, **options):
        url = options["url"] or conf.get("CONSUL_URL")
        if not url:
            raise CommandError("No Consul URL: pass --url or set COURTSIDE_SERVICES_CONSUL_URL.")
        try:
            with ConsulClient(url, token=conf.get("CONSUL_TOKEN") or None) as client:
                report = consul_sync(client=client, push=not options["pull_only"], pull=not options["push_only"])
        except ConsulError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(
            f"Pushed {len(report.pushed)}, removed {len(report.removed_from_consul)} from Consul; "
            f"pulled {len(report.pulled)}, removed {len(report.removed_here)} here."))
