"""Wake-ups by LISTEN/NOTIFY: every statement that inserts packages notifies the queues they are for.

A statement-level trigger on the queue table (one NOTIFY per statement and queue, whatever the number of
rows; PostgreSQL folds equal notifications of one transaction into one and sends them at commit), so an
idle pusher of the ORM broker (tasks.engine.orm_broker.QueueListener) wakes as the package commits instead
of at its next poll. The text is tasks.engine.orm_broker.NOTIFY_TRIGGER.
"""

from django.db import migrations
from django_tenants.utils import get_public_schema_name

from tasks.engine.orm_broker import NOTIFY_TRIGGER, NOTIFY_TRIGGER_DROP


def create(apps, schema_editor):
    schema_editor.execute(NOTIFY_TRIGGER.format(schema=get_public_schema_name()))


def drop(apps, schema_editor):
    schema_editor.execute(NOTIFY_TRIGGER_DROP.format(schema=get_public_schema_name()))


class Migration(migrations.Migration):

    dependencies = [
        ("tasks", "0010_worker_health"),
    ]

    operations = [migrations.RunPython(create, drop)]
