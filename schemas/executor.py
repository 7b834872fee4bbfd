"""Migrate one schema at a time with Django's own MigrationExecutor, reusing one loaded graph.

Stock `migrate_schemas` runs the whole `migrate` command per schema: system
checks, a graph load from disk, a render of every model state, a reconnect.
Here the graph is loaded once per rollout (before the worker processes fork,
so they inherit it), the applied state is one SELECT per schema, and the
rendered project state is cached per distinct applied set and cloned, which
is exactly what Django does between operations itself.
"""

from __future__ import annotations

import time
import traceback

from django.db import connection, transaction
from django.db.migrations import operations as ops
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

from core.locks import advisory_lock
from core.masking import mask_text
from schemas import ledger
from schemas.graph import Graph, Key, load_graph
from schemas.ledger import recording_ledger
from schemas.schema_editor import TenantSchemaEditor

# Operations after which post_migrate must run (content types and permissions of new models).
_MODEL_OPERATIONS = (ops.CreateModel, ops.DeleteModel, ops.RenameModel, ops.AlterModelOptions)


class SchemaMigrator:
    """Plans and runs migrations for one schema at a time against one graph loaded once."""

    def __init__(self, *, targets: list[tuple[str, str | None]] | None = None, by: str = "",
                 rollout_id: int | None = None, graph: Graph | None = None):
        self.graph = graph or load_graph()
        self.targets = [tuple(t) for t in targets] if targets else None
        self.by = by
        self.rollout_id = rollout_id
        self._states: dict[frozenset, object] = {}
        self._leaves: list[Key] | None = None
        self._timings: dict[Key, list[float]] = {}
        self._current: Key | None = None
        # Set while a plan with a non-atomic migration runs: each migration is then recorded as it lands.
        self._record_each: tuple[str, object] | None = None
        self._graph_is_atomic = all(m.atomic for m in self.graph.loader.graph.nodes.values())

    # -- planning (no database access) -------------------------------------------------

    def _executor(self, applied: set[Key]) -> MigrationExecutor:
        loader = self.graph.loader
        loader.applied_migrations = dict.fromkeys(self.graph.effective_applied(applied))
        # Built by hand to reuse the loaded graph: MigrationExecutor() would reload it from disk.
        executor = MigrationExecutor.__new__(MigrationExecutor)
        executor.connection = connection
        executor.loader = loader
        executor.recorder = MigrationRecorder(connection)
        executor.progress_callback = self._progress
        return executor

    def resolved_targets(self) -> list[tuple[str, str | None]]:
        if self.targets:
            return self.targets
        if self._leaves is None:  # leaf_nodes() walks the whole graph: once per migrator, not once per schema
            self._leaves = list(self.graph.loader.graph.leaf_nodes())
        return self._leaves

    def plan(self, applied: set[Key]) -> list[tuple[Key, bool]]:
        """[(key, backwards), ...] that would bring a schema with this applied set to the targets.

        Planned once per distinct applied set (and targets): 10,000 schemas in a handful of states cost a
        handful of plans."""
        def compute():
            executor = self._executor(applied)
            return tuple(((m.app_label, m.name), backwards)
                         for m, backwards in executor.migration_plan(self.resolved_targets()))

        return list(self.graph.memo(("plan", tuple(self.resolved_targets())), applied, compute))

    def warm(self, applied: set[Key]) -> None:
        """Render the project state for an applied set ahead of forking, so workers inherit it."""
        self._state_for(self._executor(applied), applied)

    def _state_for(self, executor: MigrationExecutor, applied: set[Key]):
        key = frozenset(self.graph.effective_applied(applied))
        if key not in self._states:
            state = executor._create_project_state(with_applied_migrations=True)
            state.apps  # noqa: B018  render once here, not once per schema
            self._states[key] = state
        return self._states[key].clone()

    def _progress(self, action, migration=None, fake=False):
        if migration is None:
            return
        key = (migration.app_label, migration.name)
        if action in ("apply_start", "unapply_start"):
            self._current = key
            self._timings[key] = [time.monotonic(), 0.0]
        elif action in ("apply_success", "unapply_success"):
            self._timings[key][1] = time.monotonic()
            self._current = None
            if self._record_each is not None:
                schema_name, started_at = self._record_each
                ledger.ledger_record(schema_name=schema_name, plan=[(key, action == "unapply_success")],
                                       timings=self._timings, by=self.by, rollout_id=self.rollout_id,
                                       graph=self.graph, started_at=started_at)

    @staticmethod
    def _post_migrate(plan, state) -> None:
        """post_migrate (content types, permissions) for the apps whose models this plan changed, only.

        Stock migrate sends it to every app on every schema, which is most of
        a no-op migrate's cost; models that did not change need nothing.
        """
        from django.apps import apps
        from django.db.models.signals import post_migrate

        labels = {m.app_label for m, _ in plan if any(isinstance(op, _MODEL_OPERATIONS) for op in m.operations)}
        for config in apps.get_app_configs():
            if config.label in labels and config.models_module is not None:
                post_migrate.send(sender=config, app_config=config, verbosity=0, interactive=False,
                                  using=connection.alias, apps=state.apps, plan=plan)

    # -- running -------------------------------------------------------------------------

    def _migrate_locked(self, schema_name: str, quoted: str, has_table: bool, started_at) -> list[str]:
        recorder = MigrationRecorder(connection)
        if not has_table:
            recorder.ensure_schema()
        with connection.cursor() as cursor:
            # Another migrate of the same schema (stock migrate_schemas) waits for us.
            cursor.execute(f"LOCK TABLE {quoted}.django_migrations IN SHARE ROW EXCLUSIVE MODE")
            cursor.execute(f"SELECT app, name FROM {quoted}.django_migrations")
            applied = {(app, name) for app, name in cursor.fetchall()}
        executor = self._executor(applied)
        executor.recorder._has_table = True  # checked above: saves an introspection query per schema
        plan = executor.migration_plan(self.resolved_targets())
        if not plan:
            return []
        forwards = not plan[0][1]
        state = self._state_for(executor, applied) if forwards else None
        state = executor.migrate(self.resolved_targets(), plan=plan, state=state)
        if forwards:
            self._post_migrate(plan, state)
        keys = [((m.app_label, m.name), backwards) for m, backwards in plan]
        ledger.ledger_record(schema_name=schema_name, plan=keys, timings=self._timings, by=self.by,
                               rollout_id=self.rollout_id, graph=self.graph, started_at=started_at)
        # Under the lock taken above: the triggers that keep schemas_appliedstate are there, the count exact.
        ledger.applied_state_adopt_one(schema_name=schema_name)
        return [f"{'-' if b else ''}{a}.{n}" for (a, n), b in keys]

    def _plan_is_atomic(self, quoted: str) -> bool:
        """False when the plan holds a migration declared `atomic = False` (CREATE INDEX CONCURRENTLY...)."""
        if self._graph_is_atomic:
            return True  # the usual case costs no query
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [f"{quoted}.django_migrations"])
            if cursor.fetchone()[0] is None:
                return True
            cursor.execute(f"SELECT app, name FROM {quoted}.django_migrations")
            applied = {(app, name) for app, name in cursor.fetchall()}
        plan = self._executor(applied).migration_plan(self.resolved_targets())
        return all(migration.atomic for migration, _backwards in plan)

    def _migrate_non_atomic(self, schema_name: str, quoted: str, started_at) -> list[str]:
        """A plan with a non-atomic migration: each migration commits on its own, as Django runs them.

        It cannot be one transaction (PostgreSQL refuses CREATE INDEX
        CONCURRENTLY inside one), so each migration is recorded in the ledger
        as it lands: a failure midway leaves the schema and its ledger on the
        last migration that succeeded, and `rollout --resume` goes on from there.
        A session advisory lock keeps a second migrator of this schema out.
        """
        with advisory_lock("schema-migration", schema_name):
            recorder = MigrationRecorder(connection)
            recorder.ensure_schema()
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT app, name FROM {quoted}.django_migrations")
                applied = {(app, name) for app, name in cursor.fetchall()}
            executor = self._executor(applied)
            plan = executor.migration_plan(self.resolved_targets())
            if not plan:
                return []
            forwards = not plan[0][1]
            state = self._state_for(executor, applied) if forwards else None
            self._record_each = (schema_name, started_at)
            try:
                state = executor.migrate(self.resolved_targets(), plan=plan, state=state)
            finally:
                self._record_each = None
            if forwards:
                self._post_migrate(plan, state)
            ledger.applied_state_adopt_one(schema_name=schema_name)
            return [f"{'-' if b else ''}{m.app_label}.{m.name}" for m, b in plan]

    def run(self, schema_name: str) -> dict:
        """Migrate one schema in one transaction (or migration by migration when the plan has a
        non-atomic one); returns {schema, status, applied, error}."""
        result = {"schema": schema_name, "status": "ok", "applied": [], "error": ""}
        self._timings, self._current = {}, None
        started_at = ledger.now()
        token = recording_ledger.set(True)
        # This schema's migrations run through the tenant schema editor (AddField NOT NULL with a default without
        # PostgreSQL's scan of pg_depend: schemas/schema_editor.py); the connection's own class again after.
        connection.SchemaEditorClass = TenantSchemaEditor
        try:
            connection.set_schema(schema_name)
            quoted = connection.ops.quote_name(schema_name)
            if not self._plan_is_atomic(quoted):
                result["applied"] = self._migrate_non_atomic(schema_name, quoted, started_at)
                return result
            with transaction.atomic():
                # This first cursor sets the schema's search_path; it then holds for the whole transaction.
                with connection.cursor() as cursor:
                    cursor.execute("SELECT to_regclass(%s)", [f"{quoted}.django_migrations"])
                    has_table = cursor.fetchone()[0] is not None
                # django-tenants re-issues SET search_path on every new cursor, ~40% of a small migration's
                # round trips. Nothing below switches schema, and the SET above ran outside any savepoint, so a
                # rollback to a savepoint cannot undo it (the trap of TENANT_LIMIT_SET_CALLS, #1262).
                connection._setting_search_path = True
                try:
                    result["applied"] = self._migrate_locked(schema_name, quoted, has_table, started_at)
                finally:
                    connection._setting_search_path = False
        except Exception as error:  # noqa: BLE001  any failure is this schema's, reported, never fatal to others
            result["status"] = "failed"
            failed = self._current
            result["error"] = mask_text(f"{failed[0]}.{failed[1]}: {error}" if failed else str(error))
            result["traceback"] = mask_text(traceback.format_exc(limit=5))
            try:
                ledger.ledger_record_failure(schema_name=schema_name, key=failed, error=result["error"],
                                               by=self.by, rollout_id=self.rollout_id, graph=self.graph,
                                               started_at=started_at)
            except Exception:  # noqa: BLE001  the ledger write must not hide the migration error
                pass
        finally:
            del connection.SchemaEditorClass  # the instance attribute: the class's own editor shows again
            recording_ledger.reset(token)
            connection.set_schema_to_public()
        return result


# -- process pool plumbing: the migrator is built in the parent and inherited by fork --------

_WORKER_MIGRATOR: SchemaMigrator | None = None


def set_worker_migrator(migrator: SchemaMigrator | None) -> None:
    global _WORKER_MIGRATOR
    _WORKER_MIGRATOR = migrator


def worker_run(schema_name: str) -> dict:
    return _WORKER_MIGRATOR.run(schema_name)
