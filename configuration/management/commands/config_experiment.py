"""A/B experiments: list them with their split, show one, kill or resume one, see a tenant's variant."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from configuration import keys, selectors, services
from configuration.conf import PUBLIC, config
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Experiments are the configuration keys experiments.<name> ({enabled, control, variants: {name: weight}, "
        "overrides}). `list` shows each with its split (weights and exposures counted so far), `show NAME` one, "
        "`kill NAME` turns it off (every tenant gets the control, in every process within a second), `resume NAME` "
        "runs it again, `assign NAME --tenant SCHEMA [--user ID]` prints the variant that tenant (and user) gets."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("list", "show", "kill", "resume", "assign"))
        parser.add_argument("name", nargs="?")
        parser.add_argument("--tenant", help="the tenant's schema name (assign)")
        parser.add_argument("--user", help="a user id, for per-user assignment (assign)")

    def handle(self, *args, action, name, tenant, user, **options):
        specs = config.get("experiments", default={}, tenant=PUBLIC) or {}
        if action == "list":
            summaries = selectors.experiment_summaries(specs=specs)
            if not summaries:
                self.stdout.write("No experiment is defined.")
            for summary in summaries:
                self._summary(summary)
            return
        if not name:
            raise CommandError(f"{action} needs the experiment's name.")
        if name not in specs and action != "show":
            raise CommandError(f"No experiment {name!r} (define experiments.{name} first).")
        if action == "show":
            summary = selectors.experiment_summaries(specs=specs, name=name)[0]
            if not summary["defined"] and not summary["exposures"]:
                raise CommandError(f"No experiment {name!r}.")
            self._summary(summary)
        elif action in ("kill", "resume"):
            try:
                services.experiment_switch(name=name, enabled=action == "resume", changed_by="manage.py",
                                           source="command")
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
            state = "runs" if action == "resume" else f"is off: every tenant gets {specs[name].get('control')}"
            self.stdout.write(self.style.SUCCESS(f"{name} {state}."))
        else:
            if not tenant or not Tenant.objects.filter(schema_name=tenant).exclude(schema_name=PUBLIC).exists():
                raise CommandError("assign needs --tenant with the schema name of a tenant.")
            self.stdout.write(str(keys.experiment_variant(name, tenant=tenant, user=user)))

    def _summary(self, summary: dict) -> None:
        if not summary["defined"]:
            state = "removed (counts only)"
        elif summary["enabled"]:
            state = "running"
        else:
            state = f"off: everyone gets {summary['control']}"
        self.stdout.write(self.style.MIGRATE_HEADING(f"{summary['name']}  {state}  ({summary['exposures']} exposures)"))
        for variant in summary["variants"]:
            control = " (control)" if variant["name"] == summary["control"] else ""
            self.stdout.write(f"  {variant['name'] + control:24s} weight {variant['weight']:>5} "
                              f"({variant['weight_share']:5.1f} %)   exposures {variant['exposures']:>8} "
                              f"({variant['exposure_share']:5.1f} %)")
        for schema, variant in sorted(summary["overrides"].items()):
            self.stdout.write(f"  override: {schema} -> {variant}")
