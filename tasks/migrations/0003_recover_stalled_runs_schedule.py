"""Every minute the cluster looks for task runs whose package was lost (see services.recover_stalled_runs)."""

from django.db import migrations

NAME = "tasks: recover stalled runs"


def create(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME, defaults={"func": "tasks.runner.recover_stalled_runs", "schedule_type": "I", "minutes": 1,
                             "repeats": -1},
    )


def remove(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("tasks", "0002_lean_indexes"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]
    operations = [migrations.RunPython(create, remove)]
