"""schemas_appliedstate: per schema's django_migrations table, its rows and their digest, kept by triggers on it.

The no-op migration check read every schema's django_migrations (a 250-branch UNION ALL per 250 schemas, five
times per `rollout`): 2.6 ms per schema at 10,000. With these triggers it reads one 10,000-row table and one
catalog query. Each tenant's django_migrations gets four statement-level triggers (insert, update, delete,
truncate) calling one function in the public schema; `schemas_applied_state_adopt(table)` installs them and
counts the table under a SHARE ROW EXCLUSIVE lock, so no write slips between the count and the first trigger.
The triggers only update an existing row: a table nobody adopted (a fresh pg_dump restore, a new table under an
old name) has none and is read directly. Existing schemas are adopted here, in batches.
"""

from django.conf import settings
from django.db import migrations, models

M = "18446744073709551616"  # 2**64
HALF = "('x' || substr(md5(app || chr(31) || name), {start}, 16))::bit(64)::bigint::numeric"
TRIGGERS = ("insert", "update", "delete", "truncate")
BATCH = 200  # tables adopted per transaction: one lock each, within max_locks_per_transaction


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql(public: str) -> tuple[str, str]:
    state = f"{public}.schemas_appliedstate"

    def delta(source: str, sign: str) -> str:
        return f"SELECT {sign} AS sign, {HALF.format(start=1)} AS p1, {HALF.format(start=17)} AS p2 FROM {source}"

    def apply(source: str) -> str:
        return f"""
        UPDATE {state} AS s SET rows = s.rows + d.rows, h1 = mod(mod(s.h1 + d.p1, {M}) + {M}, {M}),
            h2 = mod(mod(s.h2 + d.p2, {M}) + {M}, {M})
        FROM (SELECT coalesce(sum(sign), 0) AS rows, coalesce(sum(sign * p1), 0) AS p1,
              coalesce(sum(sign * p2), 0) AS p2 FROM ({source}) AS x) AS d
        WHERE s.relid = TG_RELID AND (d.rows <> 0 OR d.p1 <> 0 OR d.p2 <> 0);"""

    create_trigger = {
        "insert": "AFTER INSERT ON %1$s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT",
        "update": "AFTER UPDATE ON %1$s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT",
        "delete": "AFTER DELETE ON %1$s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT",
        "truncate": "AFTER TRUNCATE ON %1$s FOR EACH STATEMENT",
    }
    count_sql = (f"SELECT count(*) AS rows, mod(mod(coalesce(sum(p1), 0), {M}) + {M}, {M}) AS h1, "
                 f"mod(mod(coalesce(sum(p2), 0), {M}) + {M}, {M}) AS h2 "
                 f"FROM (SELECT {HALF.format(start=1)} AS p1, {HALF.format(start=17)} AS p2 FROM %s) AS x")
    creates = "\n".join(
        f"        EXECUTE format('DROP TRIGGER IF EXISTS schemas_applied_state_{kind} ON %1$s; "
        f"CREATE TRIGGER schemas_applied_state_{kind} {create_trigger[kind]} "
        f"EXECUTE FUNCTION {public}.schemas_applied_state_apply()', tbl);" for kind in TRIGGERS)
    forward = f"""
CREATE FUNCTION {public}.schemas_applied_state_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE {state} SET rows = 0, h1 = 0, h2 = 0 WHERE relid = TG_RELID;
    ELSIF TG_OP = 'INSERT' THEN{apply(delta("new_rows", "1"))}
    ELSIF TG_OP = 'DELETE' THEN{apply(delta("old_rows", "-1"))}
    ELSE{apply(delta("new_rows", "1") + " UNION ALL " + delta("old_rows", "-1"))}
    END IF;
    RETURN NULL;
END
$$;
CREATE FUNCTION {public}.schemas_applied_state_adopt(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    counted record;
BEGIN
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    IF (SELECT count(*) FROM pg_trigger WHERE tgrelid = tbl AND tgenabled IN ('O', 'A')
        AND tgname IN ({", ".join(f"'schemas_applied_state_{k}'" for k in TRIGGERS)})) < {len(TRIGGERS)} THEN
{creates}
    END IF;
    EXECUTE format({_literal(count_sql)}, tbl) INTO counted;
    INSERT INTO {state} (relid, rows, h1, h2) VALUES (tbl::oid, counted.rows, counted.h1, counted.h2)
    ON CONFLICT (relid) DO UPDATE SET rows = excluded.rows, h1 = excluded.h1, h2 = excluded.h2;
END
$$;
"""
    reverse = (f"DROP FUNCTION IF EXISTS {public}.schemas_applied_state_adopt(regclass);\n"
               # CASCADE drops every schema's triggers on it with it
               f"DROP FUNCTION IF EXISTS {public}.schemas_applied_state_apply() CASCADE;")
    return forward, reverse


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    public = connection.ops.quote_name(settings.PUBLIC_SCHEMA_NAME)
    with connection.cursor() as cursor:
        cursor.execute(_sql(public)[0])  # no parameters: its format() placeholders (%1$s) are PostgreSQL's
    # Every schema's django_migrations adopted (schemas.ledger.applied_state_adopt does the same for new ones).
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.oid FROM pg_class c WHERE c.relname = 'django_migrations' AND c.relkind = 'r' "
                       "ORDER BY c.oid")
        tables = [row[0] for row in cursor.fetchall()]
        for start in range(0, len(tables), BATCH):
            cursor.execute(f"SELECT {public}.schemas_applied_state_adopt(t::regclass) FROM unnest(%s::oid[]) AS t",
                           [tables[start:start + BATCH]])


def backwards(apps, schema_editor):
    public = schema_editor.connection.ops.quote_name(settings.PUBLIC_SCHEMA_NAME)
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(_sql(public)[1])


class Migration(migrations.Migration):

    dependencies = [
        ('schemas', '0004_ledger_state'),
    ]

    operations = [
        migrations.CreateModel(
            name='AppliedState',
            fields=[
                ('relid', models.BigIntegerField(primary_key=True, serialize=False, verbose_name='table oid')),
                ('rows', models.IntegerField(default=0, verbose_name='rows')),
                ('h1', models.DecimalField(decimal_places=0, default=0, max_digits=20, verbose_name='digest (high)')),
                ('h2', models.DecimalField(decimal_places=0, default=0, max_digits=20, verbose_name='digest (low)')),
            ],
            options={
                'verbose_name': 'applied-migrations state',
                'default_permissions': ('view',),
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
