"""courtside_claim_run generated from the claim rule in tasks.engine.claim, where it is written once.

The function's behaviour is 0005's; from here on its text comes from the code
(claim_function_sql), and tests/tasks/test_claim_rule.py fails when the
function in the database differs from what the code generates: change the
rule, then add a migration like this one.
"""

from django.db import migrations
from django_tenants.utils import get_public_schema_name

from tasks.engine.claim import claim_function_sql


def create_claim(apps, schema_editor):
    schema_editor.execute(claim_function_sql(get_public_schema_name()))


def restore_claim(apps, schema_editor):
    import importlib

    previous = importlib.import_module("tasks.migrations.0005_claimed_until_started")
    schema_editor.execute(previous.CLAIM.format(schema=get_public_schema_name()))


class Migration(migrations.Migration):

    dependencies = [
        ("tasks", "0007_fair_dispatch_and_run_caps"),
    ]

    operations = [migrations.RunPython(create_claim, restore_claim)]
