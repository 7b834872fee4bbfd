"""Export the effective configuration of an environment (and a tenant's view) as YAML or JSON, secrets masked."""

import json
import os

import yaml
from django.core.management.base import BaseCommand, CommandError

from configuration.conf import PUBLIC, config
from configuration.layers import ENVIRONMENTS
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Print (or write) the effective configuration: every layer merged for the given environment's files, "
        "with a tenant's overrides when --tenant is given. Secrets are masked; config_import keeps masked secrets."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=("yaml", "json"), default="yaml")
        parser.add_argument("--env", choices=ENVIRONMENTS, default=None,
                            help="Whose files to merge (default: COURTSIDE_ENV, else development).")
        parser.add_argument("--tenant", default=None, help="Schema name: export that tenant's view.")
        parser.add_argument("--output", "-o", default=None, help="Write to this file instead of stdout.")

    def handle(self, *args, **options):
        scope = options["tenant"] or PUBLIC
        if scope != PUBLIC and not Tenant.objects.filter(schema_name=scope).exists():
            raise CommandError(f"No tenant with schema {scope!r}.")
        previous_env = os.environ.get("COURTSIDE_ENV")
        try:
            if options["env"]:
                os.environ["COURTSIDE_ENV"] = options["env"]
                config.reload()
            tree = config.as_dict(tenant=scope, masked=True)
            errors = config.validate(tenant=scope)
        finally:
            if options["env"]:
                if previous_env is None:
                    os.environ.pop("COURTSIDE_ENV", None)
                else:
                    os.environ["COURTSIDE_ENV"] = previous_env
                config.reload()
        if options["format"] == "json":
            text = json.dumps(tree, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        else:
            text = yaml.safe_dump(tree, sort_keys=True, allow_unicode=True)
        for error in errors:
            self.stderr.write(self.style.WARNING(f"invalid: {error}"))
        if options["output"]:
            with open(options["output"], "w") as handle:
                handle.write(text)
            if options["verbosity"] >= 1:
                self.stdout.write(self.style.SUCCESS(f"Wrote {options['output']} ({options['format']}, {scope})."))
        else:
            self.stdout.write(text, ending="")
