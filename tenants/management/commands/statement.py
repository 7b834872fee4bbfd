"""`manage.py statement <schema> <YYYY-MM> [--format text|csv|json]`: a tenant's monthly statement."""

import json

from django.core.management.base import BaseCommand, CommandError

from tenants import billing, selectors, statements


class Command(BaseCommand):
    help = "A tenant's statement of one month: base price pro-rated by plan, overage, calls by surface, total."

    def add_arguments(self, parser):
        parser.add_argument("schema_name")
        parser.add_argument("month", help="YYYY-MM, e.g. 2026-11.")
        parser.add_argument("--format", choices=["text", "csv", "json"], default="text")

    def handle(self, *args, schema_name, month, format, **options):
        tenant = selectors.tenant_list().select_related("plan").filter(schema_name=schema_name).first()
        if tenant is None:
            raise CommandError(f"No tenant with schema {schema_name!r}.")
        try:
            statement = statements.tenant_statement(tenant=tenant, month=month)
        except ValueError as error:
            raise CommandError(str(error)) from None
        if format == "csv":
            self.stdout.write(billing.statement_csv(statement), ending="")
        elif format == "json":
            self.stdout.write(json.dumps(billing.statement_data(statement), indent=2))
        else:
            self.stdout.write(self._text(statement))

    def _text(self, statement) -> str:
        money = billing.format_money
        out = [f"Statement of {statement.tenant.name} ({statement.tenant.schema_name}), {statement.month}"]
        for line in statement.lines:
            out.append(f"  {line.label:<14} {line.first} to {line.last}  {line.days:>2} / {statement.days_in_month}"
                       f" days of {money(line.monthly_price_cents)}  {money(line.amount_cents):>12}")
        for line in statement.overage_lines:
            out.append(f"  overage {line.label:<14} {line.calls:,} calls at {money(line.price_cents_per_1000)}"
                       f" / 1,000  {money(line.amount_cents):>12}")
        out.append(f"  calls: {statement.api_calls:,} ({statement.rest_calls:,} REST, {statement.mcp_calls:,} MCP),"
                   f" {statement.refused_calls:,} refused")
        out.append(f"  total {money(statement.total_cents)} {billing.CURRENCY}")
        return "\n".join(out)
