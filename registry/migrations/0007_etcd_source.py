"""Instances may come from etcd (source "etcd"): pulled by the etcd mirror's watch (registry/etcd.py)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('services', '0006_check_secrets'),
    ]

    operations = [
        migrations.AlterField(
            model_name='serviceinstance',
            name='source',
            field=models.CharField(choices=[('courtside', 'Courtside'), ('consul', 'Consul'), ('etcd', 'etcd')], default='courtside', help_text="Where the instance was registered: here, or pulled from Consul's catalog.", max_length=16, verbose_name='source'),
        ),
    ]
