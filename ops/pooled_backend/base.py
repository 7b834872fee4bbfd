"""django-tenants' PostgreSQL backend for PgBouncer's transaction pooling (DATABASE_POOL_MODE=transaction).

Behind transaction pooling every transaction may run on another server
connection, and in autocommit every statement is a transaction of its own.
django-tenants sends `SET search_path` as a statement before each cursor's
first query: through the pooler the SET lands on one server connection and the
query on another, whose search_path is whatever its last client left, i.e.
another tenant's schema (django-tenants #545, #1112; tests/deploy/test_pgbouncer.py
shows it with the stock backend). Here the SET travels in the same message as
every statement (`SET search_path = ...; <statement>`, client-side binding
allows several statements in one message), so PostgreSQL runs both in one
transaction on one server connection, in autocommit and in a transaction
alike. Nothing else relies on session state: Django's own cursors bind on the
client (no prepared statements), server-side cursors are off
(DISABLE_SERVER_SIDE_CURSORS), and the prepared fast paths of core/db.py
are plain statements under this mode.
"""

from __future__ import annotations

import re

from django.db.backends.postgresql.base import Cursor as DjangoCursor
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from django_tenants.utils import get_limit_set_calls


def _quote(schema: str) -> str:
    return '"' + schema.replace('"', '""') + '"'


# Statements PostgreSQL refuses inside a transaction (a message of several statements is one): sent alone.
_OUTSIDE_TRANSACTIONS = re.compile(r"^\s*(?:(?:CREATE|DROP|ALTER)\s+DATABASE|VACUUM|ALTER\s+SYSTEM)|\bCONCURRENTLY\b",
                                   re.IGNORECASE)


class PooledCursor(DjangoCursor):
    """A client-binding cursor whose every statement carries its search_path."""

    courtside_search_path = ""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        prefix = self.courtside_search_path
        if not prefix or not isinstance(query, str) or _OUTSIDE_TRANSACTIONS.search(query):
            return super().execute(query, params, prepare=False, binary=binary)
        super().execute(f"{prefix}; {query}", params, prepare=False, binary=binary)
        self.nextset()  # the statement's own result, not the SET's
        return self

    def executemany(self, query, params_seq, *, returning=False):
        prefix = self.courtside_search_path
        if not prefix:
            return super().executemany(query, params_seq, returning=returning)
        if self.connection.autocommit:  # one transaction, so the SET and the statements share a server connection
            with self.connection.transaction():
                super().execute(prefix)
                return super().executemany(query, params_seq, returning=returning)
        super().execute(prefix)
        return super().executemany(query, params_seq, returning=returning)


class DatabaseWrapper(TenantDatabaseWrapper):
    def get_connection_params(self):
        params = super().get_connection_params()
        params["cursor_factory"] = PooledCursor
        params["prepare_threshold"] = None  # psycopg never prepares on its own
        return params

    def _handle_search_path(self, cursor=None):
        """Compute the search_path; it is sent with each statement (PooledCursor), never on its own."""
        if self._setting_search_path:
            return
        if get_limit_set_calls() and self.search_path_set_schemas:
            return
        from django.core.exceptions import ImproperlyConfigured

        if not self.schema_name:
            raise ImproperlyConfigured("Database schema not set. Did you forget to call set_schema() or set_tenant()?")
        paths = self._get_cursor_search_paths()
        self._pooled_search_path = "SET search_path = " + ",".join(_quote(s) for s in paths)
        self.search_path_set_schemas = None

    def _cursor(self, name=None):
        cursor = super()._cursor(name=name)
        raw = getattr(cursor, "cursor", None)
        if isinstance(raw, PooledCursor):
            raw.courtside_search_path = getattr(self, "_pooled_search_path", "")
        return cursor
