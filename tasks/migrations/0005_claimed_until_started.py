"""The dequeue's claim leaves the run `claimed` (shown as queued) and its start unwritten.

The run becomes `running`, and its `started_at` is written (once), when its
task function starts: see tasks.watchdog and services.run_execute. Before this,
the claim marked the run running with started_at = the dequeue's time while
its package waited in a worker's prefetch, and the renewal rewrote it later.
"""

import importlib

from django.db import migrations, models
from django_tenants.utils import get_public_schema_name

previous = importlib.import_module("tasks.migrations.0004_queue_message_run")

CLAIM = previous.CLAIM.replace(
    "SET status = 'running', attempts = r.attempts + 1, started_at = COALESCE(r.started_at, now()),",
    "SET status = 'claimed', attempts = r.attempts + 1,",
    1,
)
assert CLAIM != previous.CLAIM


def create_claim(apps, schema_editor):
    schema_editor.execute(CLAIM.format(schema=get_public_schema_name()))


def restore_claim(apps, schema_editor):
    schema_editor.execute(previous.CLAIM.format(schema=get_public_schema_name()))


class Migration(migrations.Migration):

    dependencies = [
        ('tasks', '0004_queue_message_run'),
    ]

    operations = [
        migrations.AlterField(
            model_name='taskrun',
            name='status',
            field=models.CharField(choices=[('waiting', 'Waiting for dependencies'), ('queued', 'Queued'), ('claimed', 'Queued (delivered to a worker)'), ('running', 'Running'), ('retrying', 'Retrying'), ('succeeded', 'Succeeded'), ('failed', 'Failed'), ('cancelled', 'Cancelled')], default='queued', max_length=16, verbose_name='status'),
        ),
        migrations.RunPython(create_claim, restore_claim),
    ]
