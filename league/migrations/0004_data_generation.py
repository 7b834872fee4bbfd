"""A per-schema data generation, moved by every write to league data: the response cache's invalidation.

A statement-level trigger on every league table (whatever writes: the ORM,
bulk updates, the admin, the API, tasks, commands, raw SQL, TRUNCATE) stores
the writing transaction's id and the number of its writing statements in
league_datageneration. The row is written in that transaction, so readers see
the new generation exactly when they can see the new data (at commit), and a
rolled-back write leaves it as it was. Transaction ids never repeat, in any
schema, and the statement number moves with each write inside a transaction
(which that transaction itself may read back), so a key built on a generation
can never name another state of the data (not after a rollback, nor in a
schema dropped and created again). The trigger fires BEFORE the statement, so
a transaction takes the generation row's lock before any data row's: two
writers of one tenant queue on it instead of deadlocking.

Everything is created in the tenant's own schema (search_path), and the
function names its table through TG_TABLE_SCHEMA, so a pooled schema renamed
into a tenant keeps working.
"""

from django.db import migrations

TABLES = ("league_team", "league_player", "league_game", "league_playergamestat", "league_statmodel")

CREATE = r"""
CREATE TABLE league_datageneration (
    id smallint PRIMARY KEY CHECK (id = 1),
    transaction_id bigint NOT NULL,
    statement integer NOT NULL
);
CREATE FUNCTION league_data_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'INSERT INTO %I.league_datageneration AS g (id, transaction_id, statement) VALUES (1, $1, 1) '
        'ON CONFLICT (id) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, '
        'statement = CASE WHEN g.transaction_id = EXCLUDED.transaction_id THEN g.statement + 1 ELSE 1 END',
        TG_TABLE_SCHEMA)
        USING pg_current_xact_id()::text::bigint;
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
