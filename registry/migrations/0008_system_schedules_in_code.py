"""The health sweep and the Consul sync are system jobs now (registry/tasks.py, tasks.registry.system_job).

Their plain django-q2 schedules (made after migrate by the old `health_schedule_ensure`) are removed here;
the reconcile that follows every migrate (tasks.apps) puts their successors, under the same names, on the
schedules page, where each run is a TaskRun. Reversible: backwards, the plain schedules come back.
"""

from django.db import migrations

RAW_SCHEDULES = {
    # name: (the plain function it called, django-q2 schedule fields)
    "services: health sweep": ("registry.tasks.health_sweep_task", {"schedule_type": "C", "cron": "* * * * * */30"}),
    "services: Consul sync": ("registry.tasks.consul_sync_task", {"schedule_type": "I", "minutes": 1}),
}


def remove_raw(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, (func, _fields) in RAW_SCHEDULES.items():
        Schedule.objects.filter(name=name, func__in=[func, func.replace("registry.", "services.", 1)]).delete()


def restore_raw(apps, schema_editor):
    TaskSchedule = apps.get_model("tasks", "TaskSchedule")
    Schedule = apps.get_model("django_q", "Schedule")
    for schedule in TaskSchedule.objects.filter(system=True, name__in=RAW_SCHEDULES):
        if schedule.q_schedule_id:
            Schedule.objects.filter(pk=schedule.q_schedule_id).delete()
        schedule.delete()
    name = "services: health sweep"  # the Consul one was only made where CONSUL_URL was set: the old code remakes it
    func, fields = RAW_SCHEDULES[name]
    Schedule.objects.update_or_create(name=name, defaults={"func": func, "repeats": -1, **fields})


class Migration(migrations.Migration):
    dependencies = [
        ("services", "0007_etcd_source"),
        ("tasks", "0009_system_schedules_in_code"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(remove_raw, restore_raw)]
