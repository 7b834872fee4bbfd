from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from registry import registration


class Command(BaseCommand):
    help = "Deregister service instances by id."

    def add_arguments(self, parser):
        parser.add_argument("service_ids", nargs="+", metavar="service_id")

    def handle(self, *args, **options):
        missing = []
        for service_id in options["service_ids"]:
            try:
                registration.service_deregister(service_id=service_id, reason="service_deregister command")
            except DomainError:
                missing.append(service_id)
                continue
            self.stdout.write(self.style.SUCCESS(f"Deregistered {service_id}."))
        if missing:
            raise CommandError(f"Not registered: {', '.join(missing)}.")
