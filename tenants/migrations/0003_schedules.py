"""Periodic work of the tenants app on the django-q2 cluster."""

from django.db import migrations

SCHEDULES = [
    ("tenants: usage refresh", "tenants.tasks.usage_refresh_all", 15),
    ("tenants: schema pool refill", "tenants.tasks.pool_refill", 10),
]


def create(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1}
        )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=[s[0] for s in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_plans_and_quota_functions"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create, remove)]
