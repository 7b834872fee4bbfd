"""The audit-log prune is a system job now (security/tasks.py, tasks.registry.system_job, daily at 03:30 UTC).

Its plain django-q2 schedule (migration 0001, which called `audit_prune_scheduled`) is removed here; the
reconcile that follows every migrate (tasks.apps) puts its successor, under the same name, on the schedules
page. Reversible: backwards, the plain schedule comes back.
"""

import datetime as dt

from django.db import migrations

NAME = "security: audit log prune"
FUNC = "security.tasks.audit_prune_scheduled"


def remove_raw(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME, func=FUNC).delete()


def restore_raw(apps, schema_editor):
    TaskSchedule = apps.get_model("tasks", "TaskSchedule")
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in TaskSchedule.objects.filter(system=True, name=NAME):
        if schedule.q_schedule_id:
            Schedule.objects.filter(pk=schedule.q_schedule_id).delete()
        schedule.delete()
    now = dt.datetime.now(dt.UTC)
    first = now.replace(hour=3, minute=30, second=0, microsecond=0)
    if first <= now:
        first += dt.timedelta(days=1)
    Schedule.objects.update_or_create(
        name=NAME, defaults={"func": FUNC, "schedule_type": "D", "repeats": -1, "next_run": first})


class Migration(migrations.Migration):
    dependencies = [
        ("security", "0001_security_audit_prune_schedule"),
        ("tasks", "0009_system_schedules_in_code"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(remove_raw, restore_raw)]
