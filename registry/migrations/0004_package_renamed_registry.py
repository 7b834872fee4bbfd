"""The app's package is `registry` now (it was `services`; the label stays, so no table moves).

Stored dotted paths that named the old package are moved with it: django-q2 schedules
(`services.tasks.health_sweep_task` → `registry.tasks.health_sweep_task`), so a deployment's scheduler
keeps finding the registry's tasks after the upgrade. Reversible.
"""

from django.db import migrations

OLD, NEW = "services.", "registry."


def _move(apps, old: str, new: str) -> None:
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in Schedule.objects.filter(func__startswith=old):
        schedule.func = new + schedule.func[len(old):]
        schedule.save(update_fields=["func"])
    for schedule in Schedule.objects.filter(hook__startswith=old):
        schedule.hook = new + schedule.hook[len(old):]
        schedule.save(update_fields=["hook"])


def forwards(apps, schema_editor):
    _move(apps, OLD, NEW)


def backwards(apps, schema_editor):
    _move(apps, NEW, OLD)


class Migration(migrations.Migration):
    dependencies = [
        ("services", "0003_registry_bounds_constraints"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
