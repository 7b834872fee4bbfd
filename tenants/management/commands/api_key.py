from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenants import services
from tenants.models import ApiKey, Tenant


class Command(BaseCommand):
    help = "Create, list or revoke a tenant's API keys. A new key is printed once and never stored."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("--tenant", required=True, help="Schema name of the tenant.")
        create.add_argument("--name", required=True)
        create.add_argument("--scope", choices=ApiKey.Scope.values, default=ApiKey.Scope.READ)
        listing = sub.add_parser("list")
        listing.add_argument("--tenant", required=True)
        revoke = sub.add_parser("revoke")
        revoke.add_argument("prefix")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"_{action}")(**options)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error

    def _tenant(self, schema_name):
        try:
            return Tenant.objects.exclude(schema_name="public").get(schema_name=schema_name)
        except Tenant.DoesNotExist:
            raise CommandError(f"No tenant with schema {schema_name!r}.") from None

    def _create(self, *, tenant, name, scope, **options):
        key, raw = services.api_key_create(tenant=self._tenant(tenant), name=name, scope=scope,
                                           created_by="manage.py")
        self.stdout.write(self.style.SUCCESS(f"Created {key.scope} key {key.prefix} for {tenant}. Shown once:"))
        self.stdout.write(raw)

    def _list(self, *, tenant, **options):
        for key in self._tenant(tenant).api_keys.all():
            state = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
            used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
            self.stdout.write(f"{key.prefix}  {key.scope:5}  {state:18}  last used {used}  {key.name}")

    def _revoke(self, *, prefix, **options):
        key = ApiKey.objects.filter(prefix=prefix).first()
        if key is None:
            raise CommandError(f"No API key with prefix {prefix!r}.")
        services.api_key_revoke(key=key)
        self.stdout.write(self.style.SUCCESS(f"Revoked {prefix}."))
