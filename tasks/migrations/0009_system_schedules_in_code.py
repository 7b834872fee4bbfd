"""System schedules are declared in code beside their task (tasks.registry.system_job) and reconciled into
TaskSchedule after every migrate (tasks.apps); they fire as TaskRuns through tasks.runner.fire_schedule.

The django-q2 schedules that called plain functions (tasks 0003, tenants 0003) are removed here; the
reconcile that follows this migrate puts their successors, under the same names, on the schedules page.
"""

from django.db import migrations, models

RAW_SCHEDULES = {
    # name: (the plain function it called, every N minutes)
    "tasks: recover stalled runs": ("tasks.runner.recover_stalled_runs", 1),
    "tenants: usage refresh": ("tenants.tasks.usage_refresh_all", 15),
    "tenants: schema pool refill": ("tenants.tasks.pool_refill", 10),
}


def remove_raw(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, (func, _minutes) in RAW_SCHEDULES.items():
        Schedule.objects.filter(name=name, func=func).delete()


def restore_raw(apps, schema_editor):
    TaskSchedule = apps.get_model("tasks", "TaskSchedule")
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in TaskSchedule.objects.filter(system=True, name__in=RAW_SCHEDULES):
        if schedule.q_schedule_id:
            Schedule.objects.filter(pk=schedule.q_schedule_id).delete()
        schedule.delete()
    for name, (func, minutes) in RAW_SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1})


class Migration(migrations.Migration):

    dependencies = [
        ("tasks", "0008_claim_function_from_the_rule"),
        ("tenants", "0003_schedules"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [
        migrations.AddField(
            model_name="taskschedule",
            name="system",
            field=models.BooleanField(
                default=False, editable=False, verbose_name="system",
                help_text="Declared in code beside its task (tasks.registry.system_job): its timing is not "
                          "edited here."),
        ),
        migrations.RunPython(remove_raw, restore_raw),
    ]
