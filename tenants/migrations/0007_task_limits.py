"""Task limits per plan: the highest priority, batch size, chain length and unfinished runs of its tenants.

The seeded plans get the values below (frozen here; tenants.models.TASK_LIMITS_BY_PLAN holds the same for
the test fixtures): each tier about five times the one before, Critical left to the operator.
"""

import django.core.validators
from django.db import migrations, models

LIMITS = {
    # code: (highest priority, batch size, chain length, unfinished runs)
    "FREE": (1, 20, 5, 20),
    "STARTER": (2, 100, 20, 500),
    "PROFESSIONAL": (2, 500, 100, 5_000),
    "ENTERPRISE": (2, 1_000, 500, 20_000),
}


def seed_task_limits(apps, schema_editor):
    Plan = apps.get_model("tenants", "Plan")
    for code, (priority, batch, chain, active) in LIMITS.items():
        Plan.objects.filter(code=code).update(max_task_priority=priority, max_task_batch_size=batch,
                                              max_task_chain_length=chain, max_active_task_runs=active)


class Migration(migrations.Migration):

    dependencies = [
        ('tenants', '0006_burst_limit'),
    ]

    operations = [
        migrations.AddField(
            model_name='plan',
            name='max_active_task_runs',
            field=models.PositiveIntegerField(blank=True, default=1000, help_text='Task runs waiting, queued or running at once. Empty means unlimited.', null=True, verbose_name='unfinished task runs'),
        ),
        migrations.AddField(
            model_name='plan',
            name='max_task_batch_size',
            field=models.PositiveIntegerField(blank=True, default=100, help_text='Task runs in one batch submission.', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(10000)], verbose_name='task batch size'),
        ),
        migrations.AddField(
            model_name='plan',
            name='max_task_chain_length',
            field=models.PositiveIntegerField(blank=True, default=20, help_text='Task runs in the longest dependency chain (a run without dependencies is a chain of 1).', validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(10000)], verbose_name='task chain length'),
        ),
        migrations.AddField(
            model_name='plan',
            name='max_task_priority',
            field=models.PositiveSmallIntegerField(blank=True, choices=[(0, 'Low'), (1, 'Normal'), (2, 'High'), (3, 'Critical')], default=1, help_text="The most urgent priority its tenants may submit at; Critical is the operator's unless granted.", verbose_name='highest task priority'),
        ),
        migrations.AddConstraint(
            model_name='plan',
            constraint=models.CheckConstraint(condition=models.Q(('max_task_priority__lte', 3)), name='plan_max_task_priority_range', violation_error_message='Choose a task priority from Low to Critical.'),
        ),
        migrations.RunPython(seed_task_limits, migrations.RunPython.noop),
    ]
