"""Check kinds are code (registry.kinds): the kind column takes any registered kind (choices read from the
registry, so registering one needs no migration), the database no longer lists the three built-ins, and a
kind without columns of its own keeps its parameters in `params`."""

import registry.kinds.base
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('services', '0004_package_renamed_registry'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='healthcheck',
            name='services_check_kind',
        ),
        migrations.AddField(
            model_name='healthcheck',
            name='params',
            field=models.JSONField(blank=True, default=dict, help_text='What a check kind without columns of its own needs (registry.kinds); never a secret.', verbose_name='parameters'),
        ),
        migrations.AlterField(
            model_name='healthcheck',
            name='kind',
            field=models.CharField(choices=registry.kinds.base.choices, max_length=32, verbose_name='kind'),
        ),
    ]
