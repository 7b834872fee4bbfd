"""Secret configuration values are stored encrypted (Fernet, COURTSIDE_SECRET_KEYS): encrypt the existing ones.

Secret = marked secret, secret by key name, at or under a key a schema (code or
database) marks secret, or holding a secret anywhere inside (a password in a
list of dicts). The column type stays jsonb: an encrypted value is the
envelope {"$fernet": "<token>"}. Reversing writes every value back in clear.
"""

from django.db import migrations

import configuration.models

FIELDS = {"ConfigEntry": ("value",), "ConfigChange": ("old_value", "new_value")}


def _secret_keys(apps) -> frozenset:
    from configuration import layers

    keys = {key for key, spec in layers.load_code_schemas().items() if spec.get("secret")}
    keys |= set(apps.get_model("configuration", "ConfigSchema").objects.filter(secret=True)
                .values_list("key", flat=True))
    keys |= set(apps.get_model("configuration", "ConfigEntry").objects.filter(tenant__isnull=True, secret=True)
                .values_list("key", flat=True))
    return frozenset(keys)


def encrypt_secrets(apps, schema_editor):
    from configuration import sealing
    from configuration.masking import holds_secret

    secret_keys = _secret_keys(apps)
    for model_name, fields in FIELDS.items():
        model = apps.get_model("configuration", model_name)
        for row in model.objects.all().iterator():
            keys = secret_keys | {row.key} if row.secret else secret_keys
            updates = {}
            for field in fields:
                value = getattr(row, field)
                if value not in (None, "") and (row.secret or holds_secret(row.key, value, keys)):
                    updates[field] = sealing.Sealed(value)
            if updates:
                model.objects.filter(pk=row.pk).update(**updates)


def decrypt_secrets(apps, schema_editor):
    for model_name, fields in FIELDS.items():
        model = apps.get_model("configuration", model_name)
        for row in model.objects.all().iterator():  # read decrypted by the field, written back plain
            model.objects.filter(pk=row.pk).update(**{field: getattr(row, field) for field in fields})


class Migration(migrations.Migration):

    dependencies = [
        ('configuration', '0001_initial'),
    ]

    operations = [
        migrations.AlterField(
            model_name='configchange',
            name='new_value',
            field=configuration.models.SealedJSONField(blank=True, help_text='Value after (null: deleted); encrypted when secret.', null=True, verbose_name='new value'),
        ),
        migrations.AlterField(
            model_name='configchange',
            name='old_value',
            field=configuration.models.SealedJSONField(blank=True, help_text='Value before (null: no entry); encrypted when secret.', null=True, verbose_name='old value'),
        ),
        migrations.AlterField(
            model_name='configentry',
            name='value',
            field=configuration.models.SealedJSONField(blank=True, help_text='Any JSON value (encrypted when secret).', null=True, verbose_name='value'),
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets, elidable=False),
    ]
