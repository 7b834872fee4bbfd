import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from core.errors import DomainError
from registry import registration


class Command(BaseCommand):
    help = "Register a service instance (or update it when the id exists) with its health checks."

    def add_arguments(self, parser):
        parser.add_argument("name", help="Service name, e.g. stats-api.")
        parser.add_argument("--id", dest="service_id", required=True, help="Unique instance id.")
        parser.add_argument("--host", required=True)
        parser.add_argument("--port", required=True, type=int)
        parser.add_argument("--tag", action="append", default=[], dest="tags", help="Repeat for several tags.")
        parser.add_argument("--weight", type=int, default=1)
        parser.add_argument("--meta", default="{}", help="Metadata as a JSON object.")
        parser.add_argument("--ttl", help="TTL check, e.g. 30s (the default check when no other is given).")
        parser.add_argument("--http", help="HTTP check URL.")
        parser.add_argument("--tcp", help="TCP check host:port.")
        parser.add_argument("--interval", default="10s", help="Interval of the HTTP/TCP check.")
        parser.add_argument("--timeout", default="5s", help="Timeout of the HTTP/TCP check.")
        parser.add_argument("--deregister-after", help="Deregister after critical this long, e.g. 10m.")
        parser.add_argument("--check", action="append", default=[], dest="specs", metavar="JSON",
                            help='A check spec as the API takes it, of any kind (repeatable), e.g. '
                                 '\'{"type": "postgres", "dsn": "postgresql://monitor:...@db:5432/app", '
                                 '"interval": "10s"}\' or a kind a project registered (SERVICES["CHECK_KINDS"]).')

    def handle(self, *args, **options):
        try:
            metadata = json.loads(options["meta"])
        except json.JSONDecodeError as error:
            raise CommandError(f"--meta is not JSON: {error}") from error
        common = {"deregister_critical_after": options["deregister_after"]}
        checks = []
        if options["ttl"]:
            checks.append({"kind": "ttl", "ttl": options["ttl"], **common})
        if options["http"]:
            checks.append({"kind": "http", "url": options["http"], "interval": options["interval"],
                           "timeout": options["timeout"], **common})
        if options["tcp"]:
            checks.append({"kind": "tcp", "tcp": options["tcp"], "interval": options["interval"],
                           "timeout": options["timeout"], **common})
        for number, text in enumerate(options["specs"], start=1):
            try:
                spec = json.loads(text)
            except json.JSONDecodeError as error:
                # The spec may hold a secret (a DSN): name the position, never echo the text.
                raise CommandError(f"--check #{number} is not JSON ({error.msg} at character {error.pos}).") from None
            if not isinstance(spec, dict):
                raise CommandError(f"--check #{number} must be a JSON object.")
            checks.append(spec)
        try:
            instance = registration.service_register(
                service_id=options["service_id"], name=options["name"], host=options["host"], port=options["port"],
                tags=options["tags"], metadata=metadata, weight=options["weight"], checks=checks or None,
            )
        except ValidationError as error:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in error.message_dict.items())
                               if hasattr(error, "error_dict") else " ".join(error.messages)) from error
        except DomainError as error:
            raise CommandError(error.message) from error
        self.stdout.write(self.style.SUCCESS(
            f"Registered {instance.name}/{instance.service_id} at {instance.address} ({instance.status})."))
