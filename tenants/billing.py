"""Money: plan prices are stored in cents and shown, entered and billed in the currency."""

from __future__ import annotations

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
