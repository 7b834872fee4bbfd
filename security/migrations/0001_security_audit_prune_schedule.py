"""Every day at 03:30 UTC the cluster prunes the audit log and login history past their retention."""

import datetime as dt

from django.db import migrations

NAME = "security: audit log prune"


def create(apps, schema_editor):
    now = dt.datetime.now(dt.UTC)
    first = now.replace(hour=3, minute=30, second=0, microsecond=0)
    if first <= now:
        first += dt.timedelta(days=1)
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME, defaults={"func": "security.tasks.audit_prune_scheduled", "schedule_type": "D", "repeats": -1,
                             "next_run": first},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create, remove)]
