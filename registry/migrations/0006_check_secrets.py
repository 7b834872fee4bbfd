"""A check kind may keep a secret (the DSN of a PostgreSQL or Redis check): sealed at rest, never shown."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('services', '0005_check_kinds_in_code'),
    ]

    operations = [
        migrations.AddField(
            model_name='healthcheck',
            name='secret',
            field=models.JSONField(blank=True, editable=False, help_text="A kind's secret (a DSN with its password), sealed at rest; never shown or returned.", null=True, verbose_name='secret'),
        ),
    ]
