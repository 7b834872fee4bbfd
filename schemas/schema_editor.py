"""The schema editor a rollout migrates tenant schemas with: AddField of a NOT NULL column with a default, cheaply.

Django adds such a column as `ADD COLUMN c type DEFAULT v NOT NULL` and then `ALTER COLUMN c DROP DEFAULT`.
PostgreSQL (15 here) runs `find_composite_type_dependencies` for an added column with a default: a scan of the
whole of pg_depend (perf: 84-96% of the statement), whose size grows with every schema of the database (5.5
million rows at 10,000 tenant schemas: 200 ms a statement, 76 ms a schema over a rollout). A column added
without a default skips it. So, inside the migration's transaction, with the table locked as ALTER TABLE locks it:

  * an empty table: `ADD COLUMN c type NOT NULL` (nothing to fill, nothing left to drop);
  * a small table (at most BACKFILL_MAX_ROWS rows, no user trigger on UPDATE): `ADD COLUMN c type NULL`,
    `UPDATE t SET c = v`, `ALTER COLUMN c SET NOT NULL`;
  * anything else (a large table, a nullable column, a database default, a primary key, a relation, outside a
    transaction): Django's own statements.

The column ends as Django's: same type, NOT NULL, no default, the same constraints and indexes (those come from
Django's own add_field, given the field or its nullable copy). Only pg_attribute's fast-default bookkeeping
(`atthasmissing`) differs, which no query sees.
"""

from __future__ import annotations

import copy

from django.db.backends.postgresql.schema import DatabaseSchemaEditor

BACKFILL_MAX_ROWS = 1000  # a rewrite of more rows costs more than the pg_depend scan it saves, at 10,000 schemas


class TenantSchemaEditor(DatabaseSchemaEditor):
    _without_default = None  # the field add_field is adding with no DEFAULT clause (and no DROP DEFAULT after)

    def skip_default(self, field):
        return field is self._without_default or super().skip_default(field)

    def skip_default_on_alter(self, field):
        return field is self._without_default or super().skip_default_on_alter(field)

    def add_field(self, model, field):
        mode = self._cheap_add_mode(model, field)
        if mode is None:
            return super().add_field(model, field)
        added = field if mode == "empty" else copy.copy(field)
        if mode == "backfill":
            added.null = True
        self._without_default = added
        try:
            super().add_field(model, added)
        finally:
            self._without_default = None
        if mode == "backfill":
            table, column = self.quote_name(model._meta.db_table), self.quote_name(field.column)
            self.execute(f"UPDATE {table} SET {column} = %s", [self.effective_default(field)])
            self.execute(self.sql_alter_column % {"table": table, "changes": self.sql_alter_column_not_null % {
                "column": column}})

    def _cheap_add_mode(self, model, field) -> str | None:
        """'empty', 'backfill' or None (Django's statements), decided under the table's ACCESS EXCLUSIVE lock."""
        if (field.many_to_many or field.null or field.primary_key or field.generated or field.has_db_default()
                or field.db_parameters(connection=self.connection)["type"] is None
                or not self.connection.in_atomic_block or self.effective_default(field) is None):
            return None
        table = self.quote_name(model._meta.db_table)
        with self.connection.cursor() as cursor:
            # ALTER TABLE takes this lock itself: taken first, nothing can add a row between the count and the ADD.
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT {BACKFILL_MAX_ROWS + 1}) AS probe")
            rows = cursor.fetchone()[0]
            if rows == 0:
                return "empty"
            if rows > BACKFILL_MAX_ROWS or field.unique or field.remote_field is not None:
                return None
            # An UPDATE would fire the table's user triggers on UPDATE, which Django's ADD COLUMN never does.
            cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass "
                           "AND NOT tgisinternal AND tgtype & 16 <> 0)", [table])
            if cursor.fetchone()[0]:
                return None
        return "backfill"
