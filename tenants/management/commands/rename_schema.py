from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.management.commands.tenant import validation_messages
from tenants.models import Tenant


class Command(BaseCommand):
    help = ("Rename a tenant's schema: the schema, the tenant row and its migration ledger in one transaction. "
            "Replaces django-tenants' rename_schema, which renamed the schema and the row in two steps and "
            "left the ledger under the old name.")

    def add_arguments(self, parser):
        # django-tenants' option names, so existing scripts keep working.
        parser.add_argument("--rename_from", "--rename-from", required=True, metavar="SCHEMA",
                            help="The tenant's current schema name.")
        parser.add_argument("--rename_to", "--rename-to", required=True, metavar="SCHEMA", help="The new name.")

    def handle(self, *args, rename_from, rename_to, **options):
        tenant = Tenant.objects.filter(schema_name=rename_from).first()
        if tenant is None:
            raise CommandError(f"No tenant with schema {rename_from!r}.")
        try:
            tenant = services.tenant_schema_rename(tenant=tenant, new_schema_name=rename_to)
        except ValidationError as error:
            raise CommandError(validation_messages(error)) from error
        self.stdout.write(self.style.SUCCESS(f"Renamed schema {rename_from} to {tenant.schema_name}."))
