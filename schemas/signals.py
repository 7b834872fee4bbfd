"""Receivers that let stock `migrate` / `migrate_schemas` runs land in the ledger too."""

from django.db import connection

from schemas import ledger

# (alias, schema) -> when its pre_migrate fired; post_migrate turns it into a duration.
_started: dict[tuple[str, str], object] = {}


def ledger_pre_migrate(sender, using=None, plan=None, **kwargs):
    _started[(using, getattr(connection, "schema_name", ""))] = ledger.now()


def ledger_post_migrate(sender, using=None, plan=None, **kwargs):
    started = _started.pop((using, getattr(connection, "schema_name", "")), None)
    ledger.ledger_record_stock_plan(plan=plan, started_at=started)
