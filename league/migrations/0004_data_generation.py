"""A per-schema data generation, moved by every write to league data: the response cache's invalidation.

A statement-level trigger on every league table (whatever writes: the ORM,
bulk updates, the admin, the API, tasks, commands, raw SQL, TRUNCATE) records,
in league_datageneration, the writing transaction's id and the number of its
writing statements, on the row of its server backend. The generation a reader
uses is a digest of the whole table (selectors.data_generation):

- it changes exactly when the reader can see new data: the row is written in
  the writing transaction, so others see it at commit, the writer at once,
  and a rolled-back write leaves the table as it was;
- it never names another state of the data: transaction ids never repeat (in
  any schema, after a rollback, in a schema dropped and created again), and
  the statement number moves with each write inside a transaction;
- writers never wait for each other on it: each backend has its own row and
  runs one transaction at a time (a single shared row would queue every writer
  of a tenant behind the first, ahead of the row-quota trigger's lock).

Now and then a writer folds the rows of backends that are gone into row 0 (with
its own transaction id, so the folded state is new too), under a try-lock: the
table stays about as small as the set of live writing connections.

Everything is created in the tenant's own schema (search_path) and the function
names its table through TG_TABLE_SCHEMA, so a pooled schema renamed into a
tenant keeps working.
"""

from django.db import migrations

TABLES = ("league_team", "league_player", "league_game", "league_playergamestat", "league_statmodel")

CREATE = r"""
CREATE TABLE league_datageneration (
    backend integer PRIMARY KEY,
    transaction_id bigint NOT NULL,
    statement integer NOT NULL
);
CREATE FUNCTION league_data_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_transaction bigint := pg_current_xact_id()::text::bigint;
BEGIN
    EXECUTE format(
        'INSERT INTO %I.league_datageneration AS g (backend, transaction_id, statement) VALUES ($1, $2, 1) '
        'ON CONFLICT (backend) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, '
        'statement = CASE WHEN g.transaction_id = EXCLUDED.transaction_id THEN g.statement + 1 ELSE 1 END',
        TG_TABLE_SCHEMA)
        USING pg_backend_pid(), v_transaction;
    IF random() < 0.01 AND pg_try_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.league_datageneration')) THEN
        EXECUTE format(
            'WITH gone AS (DELETE FROM %1$I.league_datageneration g WHERE g.backend <> 0 '
            'AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = g.backend) RETURNING 1) '
            'INSERT INTO %1$I.league_datageneration AS g (backend, transaction_id, statement) '
            'SELECT 0, $1, 1 WHERE EXISTS (SELECT 1 FROM gone) '
            'ON CONFLICT (backend) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, statement = 1',
            TG_TABLE_SCHEMA)
            USING v_transaction;
    END IF;
    RETURN NULL;
END
$$;
"""

DROP = "DROP FUNCTION league_data_changed() CASCADE; DROP TABLE league_datageneration;"


class Migration(migrations.Migration):
    dependencies = [("league", "0003_quota_triggers")]

    operations = [
        migrations.RunSQL(CREATE, DROP),
        *(
            migrations.RunSQL(
                f"CREATE TRIGGER {table}_changed BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION league_data_changed()",
                f"DROP TRIGGER IF EXISTS {table}_changed ON {table}",
            )
            for table in TABLES
        ),
    ]
