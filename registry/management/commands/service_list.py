from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from registry import selectors
from registry.models import ServiceInstance


class Command(BaseCommand):
    help = "List registered service instances with their status and heartbeat age."

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="Only this service.")
        parser.add_argument("--tag", action="append", default=[], dest="tags")
        parser.add_argument("--status", action="append", default=[], dest="statuses")

    def handle(self, *args, **options):
        if options["name"]:
            names = [options["name"]]
        else:
            names = list(ServiceInstance.objects.order_by().values_list("name", flat=True).distinct())
        active = set(selectors.self_preservation_active().values_list("service_name", flat=True))
        now = timezone.now()
        total = 0
        for name in sorted(names):
            try:
                rows = selectors.instances_matching(name, tags=options["tags"], status=options["statuses"] or None)
            except ValidationError as error:
                raise CommandError(" ".join(error.messages)) from error
            rows = list(rows.order_by("service_id"))
            if not rows:
                continue
            banner = "  [self-preservation]" if name in active else ""
            self.stdout.write(self.style.MIGRATE_HEADING(f"{name} ({len(rows)}){banner}"))
            for instance in rows:
                age = f"{(now - instance.last_heartbeat).total_seconds():.0f}s ago" if instance.last_heartbeat \
                    else "never"
                style = {"passing": self.style.SUCCESS, "warning": self.style.WARNING}.get(instance.status,
                                                                                         self.style.ERROR)
                self.stdout.write(f"  {instance.service_id:<32} {instance.address:<28} "
                                  f"{style(instance.status):<20} w={instance.weight:<3} "
                                  f"tags={','.join(instance.tags) or '-'} heartbeat={age} source={instance.source}")
                total += 1
        if not total:
            self.stdout.write("No instances.")
        for state in selectors.etcd_mirror_states():
            self.stdout.write(selectors.etcd_mirror_line(state))
