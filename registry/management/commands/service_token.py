from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from registry import tokens


class Command(BaseCommand):
    help = "Create (or --rotate) the token a service registers and heartbeats with. Printed once."

    def add_arguments(self, parser):
        parser.add_argument("service_name")
        parser.add_argument("--rotate", action="store_true", help="Replace the existing token.")

    def handle(self, *args, **options):
        try:
            token, plaintext = tokens.token_create(service_name=options["service_name"], rotate=options["rotate"])
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        self.stdout.write(self.style.SUCCESS(f"Token for {token.service_name} (shown once):"))
        self.stdout.write(plaintext)
