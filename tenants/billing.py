"""Money: plan prices are stored in cents and shown, entered and billed in the currency; statements as CSV and JSON."""

from __future__ import annotations

import csv
import io
from decimal import ROUND_HALF_UP, Decimal

# Courtside bills in US dollars; every price and statement is in this currency.
CURRENCY = "USD"
CURRENCY_SYMBOL = "$"
CENT = Decimal("0.01")


def cents_to_amount(cents: int | None) -> Decimal | None:
    return None if cents is None else (Decimal(cents) / 100).quantize(CENT)


def amount_to_cents(amount: Decimal | None) -> int | None:
    return None if amount is None else int((Decimal(amount) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def format_money(cents: int | None) -> str:
    """`49900` → `$499.00`; None → an em dash."""
    if cents is None:
        return "—"
    sign = "-" if cents < 0 else ""
    return f"{sign}{CURRENCY_SYMBOL}{abs(cents) / 100:,.2f}"


def _amount(cents: int | None) -> str | None:
    """Cents as a currency amount in text ("1234.50"): exact in JSON, unlike a float."""
    amount = cents_to_amount(cents)
    return None if amount is None else str(amount)


CSV_HEADER = ("tenant", "month", "plan", "from", "to", "days", "monthly price", "amount", "currency")


def statement_rows(statement) -> list[list]:
    """A tenants.statements.Statement as CSV rows (CSV_HEADER first): base lines, overage lines, the total.

    An overage row names its plan, its calls past the quota in `days` ("calls"), and the price per 1,000 calls.
    """
    schema, month = statement.tenant.schema_name, statement.month
    rows: list[list] = [list(CSV_HEADER)]
    for line in statement.lines:
        rows.append([schema, month, line.label, line.first, line.last, line.days,
                     cents_to_amount(line.monthly_price_cents), cents_to_amount(line.amount_cents), CURRENCY])
    for line in statement.overage_lines:
        rows.append([schema, month, f"overage: {line.label}", "", "", f"{line.calls} calls",
                     f"{cents_to_amount(line.price_cents_per_1000)} per 1000", cents_to_amount(line.amount_cents),
                     CURRENCY])
    rows.append([schema, month, "overage", "", "", "", "", cents_to_amount(statement.overage_cents), CURRENCY])
    rows.append([schema, month, "total", "", "", "", "", cents_to_amount(statement.total_cents), CURRENCY])
    return rows


def statement_csv(statement) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(statement_rows(statement))
    return buffer.getvalue()


def statement_data(statement) -> dict:
    """A statement as JSON: amounts as decimal strings in CURRENCY, plus the same figures in integer cents."""
    return {
        "tenant": statement.tenant.schema_name, "month": statement.month, "currency": CURRENCY,
        "first_day": statement.first.isoformat(), "last_day": statement.last.isoformat(),
        "days_in_month": statement.days_in_month,
        "lines": [{"plan": line.plan.code if line.plan else None, "from": line.first.isoformat(),
                   "to": line.last.isoformat(), "days": line.days,
                   "monthly_price": _amount(line.monthly_price_cents), "amount": _amount(line.amount_cents),
                   "amount_cents": line.amount_cents} for line in statement.lines],
        "overage": [{"plan": line.plan.code, "days": line.days, "calls": line.calls,
                     "price_per_1000_calls": _amount(line.price_cents_per_1000), "amount": _amount(line.amount_cents),
                     "amount_cents": line.amount_cents} for line in statement.overage_lines],
        "calls": {"total": statement.api_calls, **statement.calls_by_surface, "refused": statement.refused_calls},
        "base": _amount(statement.base_cents), "overage_total": _amount(statement.overage_cents),
        "total": _amount(statement.total_cents), "total_cents": statement.total_cents,
    }
