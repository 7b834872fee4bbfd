"""schemas_ledgerstate: one row per schema (applied ledger rows and their digest), kept by triggers on the ledger.

The migration summary groups tenant schemas by this state and reads one schema's ledger rows per distinct state
(issue 19: 10,000 schemas x 56 migrations was a 560,000-row scan per uncached summary). Statement-level triggers
with transition tables: a bulk insert of many rows costs one grouped upsert, not one per row.
"""

from django.db import migrations, models

M = "18446744073709551616"  # 2**64: the digest's halves are sums modulo this

# The two 64-bit halves of the MD5 of an applied row's (app, name, checksum), as signed bigints.
HALF = "('x' || substr(md5(app_label || chr(31) || name || chr(31) || checksum), {start}, 16))::bit(64)::bigint"


def _delta(source: str, sign: str) -> str:
    return (f"SELECT schema_name, {sign} AS sign, {HALF.format(start=1)}::numeric AS p1, "
            f"{HALF.format(start=17)}::numeric AS p2 FROM {source} WHERE outcome = 'applied'")


def _upsert(delta: str) -> str:
    return f"""
    INSERT INTO schemas_ledgerstate AS s (schema_name, rows, h1, h2)
    SELECT schema_name, sum(sign), mod(mod(sum(sign * p1), {M}) + {M}, {M}), mod(mod(sum(sign * p2), {M}) + {M}, {M})
    FROM ({delta}) AS d GROUP BY schema_name ORDER BY schema_name
    ON CONFLICT (schema_name) DO UPDATE SET rows = s.rows + excluded.rows,
        h1 = mod(s.h1 + excluded.h1, {M}), h2 = mod(s.h2 + excluded.h2, {M});"""


FUNCTION = f"""
CREATE FUNCTION schemas_ledger_state_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM schemas_ledgerstate;
    ELSIF TG_OP = 'INSERT' THEN{_upsert(_delta("new_rows", "1"))}
    ELSIF TG_OP = 'DELETE' THEN{_upsert(_delta("old_rows", "-1"))}
    ELSE{_upsert(_delta("new_rows", "1") + " UNION ALL " + _delta("old_rows", "-1"))}
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER schemas_ledger_state_insert AFTER INSERT ON schemas_migrationrecord
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION schemas_ledger_state_apply();
CREATE TRIGGER schemas_ledger_state_update AFTER UPDATE ON schemas_migrationrecord
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION schemas_ledger_state_apply();
CREATE TRIGGER schemas_ledger_state_delete AFTER DELETE ON schemas_migrationrecord
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION schemas_ledger_state_apply();
CREATE TRIGGER schemas_ledger_state_truncate AFTER TRUNCATE ON schemas_migrationrecord
    FOR EACH STATEMENT EXECUTE FUNCTION schemas_ledger_state_apply();
LOCK TABLE schemas_migrationrecord IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM schemas_ledgerstate;
{_upsert(_delta("schemas_migrationrecord", "1"))}
"""

REVERSE = """
DROP TRIGGER IF EXISTS schemas_ledger_state_insert ON schemas_migrationrecord;
DROP TRIGGER IF EXISTS schemas_ledger_state_update ON schemas_migrationrecord;
DROP TRIGGER IF EXISTS schemas_ledger_state_delete ON schemas_migrationrecord;
DROP TRIGGER IF EXISTS schemas_ledger_state_truncate ON schemas_migrationrecord;
DROP FUNCTION IF EXISTS schemas_ledger_state_apply();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('schemas', '0003_rollout_phase'),
    ]

    operations = [
        migrations.CreateModel(
            name='LedgerState',
            fields=[
                ('schema_name', models.CharField(max_length=63, primary_key=True, serialize=False, verbose_name='schema')),
                ('rows', models.IntegerField(default=0, verbose_name='applied rows')),
                ('h1', models.DecimalField(decimal_places=0, default=0, max_digits=20, verbose_name='digest (high)')),
                ('h2', models.DecimalField(decimal_places=0, default=0, max_digits=20, verbose_name='digest (low)')),
            ],
            options={
                'verbose_name': 'ledger state',
                'default_permissions': ('view',),
            },
        ),
        migrations.RunSQL(FUNCTION, REVERSE),
    ]
