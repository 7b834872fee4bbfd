"""Enforce the plan's user and saved-model quotas in the database of every tenant schema.

The trigger function lives in public (tenants.0002); see its comment for why
a trigger and not only a check in Python.
"""

from django.db import migrations

TRIGGERS = [
    ("auth_user", "courtside_user_quota", "max_users", "users"),
    ("league_statmodel", "courtside_model_quota", "max_models", "saved models"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("league", "0002_statmodel"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunSQL(
            f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW "
            f"EXECUTE FUNCTION public.courtside_enforce_row_quota('{column}', '{label}')",
            f"DROP TRIGGER IF EXISTS {name} ON {table}",
        )
        for table, name, column, label in TRIGGERS
    ]
