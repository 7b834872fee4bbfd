import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django_tenants.utils import schema_context

from backoffice.settings.base import env
from league.models import Game, Team
from tenants import services
from tenants.models import Tenant

DEMO_TENANTS = [
    ("lakers", "Los Angeles Lakers", 7, "PROFESSIONAL", "#552583"),
    ("warriors", "Golden State Warriors", 11, "STARTER", "#1d428a"),
]


class Command(BaseCommand):
    help = "Create the operator site, an operator superuser and the demo tenants with data; idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--games", type=int, default=1230, help="Games per demo season.")

    def handle(self, *args, games, verbosity, **options):
        services.public_tenant_ensure()
        self._operator_superuser()
        for schema_name, name, seed, plan, color in DEMO_TENANTS:
            tenant = Tenant.objects.filter(schema_name=schema_name).first()
            if tenant is None:
                password, shown = _password("COURTSIDE_DEMO_TENANT_PASSWORD")
                tenant = services.tenant_create(
                    name=name, schema_name=schema_name, plan=plan, admin_email=f"admin@{schema_name}.example",
                    admin_password=password, created_by="bootstrap_demo",
                )
                Tenant.objects.filter(pk=tenant.pk).update(
                    primary_color=color, support_email=f"support@{schema_name}.example"
                )
                self.stdout.write(self.style.SUCCESS(f"Created tenant {schema_name}: admin / {shown}"))
            with schema_context(schema_name):
                # The reference data comes with the tenant (provisioning); only a tenant made before that lacks it.
                if not Team.objects.exists():
                    call_command("load_nba_reference", verbosity=verbosity)
                if not Game.objects.exists():  # the demo season stays a demo step
                    call_command("generate_season", games=games, seed=seed, verbosity=verbosity)

    def _operator_superuser(self):
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            return
        password, shown = _password("COURTSIDE_ADMIN_PASSWORD")
        users.create_superuser(username="operator", email="operator@courtside.example", password=password)
        self.stdout.write(self.style.SUCCESS(f"Operator superuser: operator / {shown}"))


def _password(variable: str) -> tuple[str, str]:
    """The password and what the run log may show of it.

    A password given in the environment is never echoed (the run log is kept,
    shared, pasted into tickets); a generated one is printed once, since nobody
    could log in otherwise.
    """
    given = env.str(variable, default="")
    if given:
        return given, f"password from {variable}"
    generated = secrets.token_urlsafe(12)
    return generated, f"{generated} (shown once)"
