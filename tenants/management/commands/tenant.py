import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from tenants import billing, provisioning, selectors, services
from tenants.models import Tenant


def validation_messages(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        return "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
    return "; ".join(error.messages)


class Command(BaseCommand):
    help = "Tenant lifecycle: create, plan, suspend, reactivate, delete, export, usage, pool, stats."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a tenant with its schema, domain and first admin.")
        create.add_argument("schema_name")
        create.add_argument("--name", required=True)
        create.add_argument("--plan", default=None, help="FREE, STARTER, PROFESSIONAL or ENTERPRISE.")
        create.add_argument("--domain", default=None)
        create.add_argument("--admin-email", default=None)
        create.add_argument("--admin-password", default=None, help="Better: set it in COURTSIDE_TENANT_ADMIN_PASSWORD.")
        plan = sub.add_parser("plan", help="Move a tenant to another plan.")
        plan.add_argument("schema_name")
        plan.add_argument("plan")
        for action in ("suspend", "reactivate", "export"):
            sub.add_parser(action, help=f"{action.capitalize()} a tenant.").add_argument("schema_name")
        delete = sub.add_parser("delete", help="Export a tenant's data to a file, then drop its schema.")
        delete.add_argument("schema_name")
        delete.add_argument("--confirm", default=None, help="The schema name again; asked for when omitted.")
        sub.add_parser("usage", help="Measure storage, users and models of every tenant into today's ledger.")
        stats = sub.add_parser("stats", help="Tenants by plan and status, with monthly recurring revenue.")
        stats.add_argument("--json", dest="as_json", action="store_true", help="One JSON object instead of a table.")
        pool = sub.add_parser("pool", help="Refill the pool of pre-migrated schemas.")
        pool.add_argument("--size", type=int, default=None)

    def handle(self, *args, action, verbosity, **options):
        try:
            getattr(self, f"_{action}")(verbosity=verbosity, **options)
        except ValidationError as error:
            raise CommandError(validation_messages(error)) from error

    def _tenant(self, schema_name) -> Tenant:
        try:
            return Tenant.objects.select_related("plan").exclude(schema_name="public").get(schema_name=schema_name)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant with schema {schema_name!r}.") from None

    def _create(self, *, schema_name, name, plan, domain, admin_email, admin_password, **options):
        import os

        password = admin_password or os.environ.get("COURTSIDE_TENANT_ADMIN_PASSWORD") or None
        tenant = services.tenant_create(
            name=name, schema_name=schema_name, plan=plan, domain=domain, admin_email=admin_email,
            admin_password=password, created_by="manage.py",
        )
        self.stdout.write(self.style.SUCCESS(
            f"Created {tenant.schema_name} on {tenant.plan.name} at {tenant.get_primary_domain().domain}."
        ))

    def _plan(self, *, schema_name, plan, **options):
        tenant = services.tenant_change_plan(tenant=self._tenant(schema_name), plan=plan, changed_by="manage.py")
        self.stdout.write(self.style.SUCCESS(f"{tenant.schema_name} is now on {tenant.plan.name}."))

    def _suspend(self, *, schema_name, **options):
        services.tenant_suspend(tenant=self._tenant(schema_name))
        self.stdout.write(self.style.SUCCESS(f"{schema_name} suspended."))

    def _reactivate(self, *, schema_name, **options):
        services.tenant_reactivate(tenant=self._tenant(schema_name))
        self.stdout.write(self.style.SUCCESS(f"{schema_name} reactivated."))

    def _export(self, *, schema_name, **options):
        path = services.tenant_export(tenant=self._tenant(schema_name))
        self.stdout.write(self.style.SUCCESS(f"Exported {schema_name} to {path}"))

    def _delete(self, *, schema_name, confirm, interactive=True, **options):
        tenant = self._tenant(schema_name)
        if confirm is None:
            if not self.stdin_is_interactive():
                raise CommandError("Pass --confirm <schema_name> to delete without a prompt.")
            confirm = input(f"This drops schema {schema_name!r} and all its data. Type the schema name to confirm: ")
        path = services.tenant_delete(tenant=tenant, confirm=confirm.strip())
        self.stdout.write(self.style.SUCCESS(f"Exported to {path}, then dropped {schema_name}."))

    def stdin_is_interactive(self) -> bool:
        import sys

        return sys.stdin is not None and sys.stdin.isatty()

    def _usage(self, **options):
        count = services.tenant_usage_refresh()
        self.stdout.write(self.style.SUCCESS(f"Measured {count} tenants."))

    def _pool(self, *, size, verbosity, **options):
        with tqdm(desc="pooled schemas", unit="schema", disable=verbosity == 0, file=self.stderr) as bar:
            result = provisioning.pool_refill(size=size, progress=lambda n: bar.update(n - bar.n))
        self.stdout.write(self.style.SUCCESS(
            f"Pool: {result['added']} added, {result['dropped']} stale dropped, {result['size']} ready."
        ))

    def _stats(self, *, as_json, **options):
        self.stdout.write(tenant_stats_text(as_json=as_json))


def tenant_stats_text(*, as_json: bool) -> str:
    """`tenant stats`: selectors.plan_totals as a table or JSON (customer tenants only)."""
    totals = selectors.plan_totals()
    rows = [{"plan": t.plan.code if t.plan else None, "tenants": t.tenants, "active": t.active,
             "suspended": t.suspended, "mrr": str(billing.cents_to_amount(t.mrr_cents))} for t in totals]
    summary = {"tenants": sum(t.tenants for t in totals), "active": sum(t.active for t in totals),
               "suspended": sum(t.suspended for t in totals),
               "mrr": str(billing.cents_to_amount(sum(t.mrr_cents for t in totals))), "currency": billing.CURRENCY}
    if as_json:
        return json.dumps({"plans": rows, "total": summary}, indent=2)
    lines = [f"{'plan':<14}{'tenants':>9}{'active':>9}{'suspended':>11}{'MRR (' + billing.CURRENCY + ')':>14}"]
    for row in rows:
        lines.append(f"{row['plan'] or '(none)':<14}{row['tenants']:>9}{row['active']:>9}{row['suspended']:>11}"
                     f"{row['mrr']:>14}")
    lines.append(f"{'total':<14}{summary['tenants']:>9}{summary['active']:>9}{summary['suspended']:>11}"
                 f"{summary['mrr']:>14}")
    return "\n".join(lines)
