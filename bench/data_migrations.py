#!/usr/bin/env python
"""A data migration over many tenant schemas: its progress, phase by phase, and the cost of the phases.

For BENCH_TENANTS schemas (default 1,000; cloned fast by bench/migrations.py's builder, in a database of its
own, dropped at the end) it rolls out a schema migration (AddField) and a data migration (RunPython) after it:
  * by `rollout_phased` (ours): the schema phase on every schema, then the data phase, each data migration
    in its own transaction per schema, never inside the schema change's lock; the progress lines show how
    many schemas are done as the data phase goes, from the data phase's Rollout row;
  * then both rolled back, and the same two by one `rollout_run` pass (both in one transaction per schema,
    the data migration inside the ALTER TABLE's lock): the baseline; the ratio is phased / one pass.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
os.environ.setdefault("BENCH_DB", "courtside_bench_data_migrations")
# The one-pass baseline (both migrations again, after a rollback) doubles the run: on by default up to 200
# schemas, BENCH_BASELINE=1 or 0 to choose.
_spec = importlib.util.spec_from_file_location("bench_migrations_base", HERE / "migrations.py")
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)
BASELINE = os.environ.get("BENCH_BASELINE", "1" if base.TENANTS <= 200 else "0") == "1"

DATA_MIGRATION = """
    from django.db import migrations


    def fill(apps, schema_editor):
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("UPDATE bench_probe_shot SET distance_ft = length(zone)")


    class Migration(migrations.Migration):
        dependencies = [("bench_probe", "0002_shot_distance")]
        operations = [migrations.RunPython(fill, migrations.RunPython.noop)]
"""


def main() -> None:
    import signal

    parent = os.getpid()
    # The parent cleans up (drops the database) on SIGTERM. A rollout's fork pool sends its workers SIGTERM when
    # it closes: a worker that inherited the handler and raised SystemExit mid-queue could hang the pool (seen
    # here at 1,000 schemas); it exits at once instead, as with the default action.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143) if os.getpid() == parent else os._exit(143))
    config = base.server_config()
    admin_kwargs = base.create_database(config)
    app_root = Path(tempfile.mkdtemp(prefix="bench_data_migrations_"))
    migrations_dir = base.write_app(app_root)
    try:
        base.setup_django(config, app_root)
        base.log(f"== bench/data_migrations.py: {base.TENANTS} tenant schemas in database {base.BENCH_DB}")
        names = base.make_schemas(config)
        from schemas.data_migrations import rollout_phased
        from schemas.models import Rollout
        from schemas.selectors import applied_migrations_by_schema
        from schemas.services import rollout_run

        (migrations_dir / "0002_shot_distance.py").write_text(textwrap.dedent(base.NEW_MIGRATION).lstrip())
        (migrations_dir / "0003_fill_distance.py").write_text(textwrap.dedent(DATA_MIGRATION).lstrip())
        total = len(names)
        seen = {"n": 0, "phase_started": time.monotonic()}
        step = max(1, total // 10)

        def progress(result):
            seen["n"] += 1
            if seen["n"] % step == 0 or seen["n"] == total:
                base.log(f"    {seen['n']}/{total} schemas done "
                         f"({time.monotonic() - seen['phase_started']:.1f}s into the phase)")

        def phase_done(phase):
            batch = f" batch {phase.batch}/{phase.batches}" if phase.batches > 1 else ""
            base.log(f"  {phase.kind} phase {phase.migration}{batch}: {phase.done}/{len(phase.result.results)} done, "
                     f"{len(phase.result.failed)} failed, {time.monotonic() - seen['phase_started']:.2f}s")
            if phase.batch == phase.batches:
                seen.update(n=0, phase_started=time.monotonic())

        base.log("Phased rollout (ours): schema phase, then the data phase")
        started = time.monotonic()
        result = rollout_phased(progress=progress, phase_done=phase_done)
        phased = time.monotonic() - started
        assert not result.failed, result.failed
        applied = applied_migrations_by_schema(names)
        assert all(("bench_probe", "0003_fill_distance") in applied[n] for n in names), "a schema was missed"
        rows = list(Rollout.objects.filter(phase__kind="data", phase__migration="bench_probe.0003_fill_distance"))
        done = sum(1 for row in rows for r in row.results.values() if r["status"] == "ok")
        first, last = min(r.pk for r in rows), max(r.pk for r in rows)
        base.log(f"  data phase: {len(rows)} batch rows (Rollout #{first}-#{last}), "
                 f"{done}/{sum(r.total for r in rows)} schemas ok, "
                 f"statuses {sorted({r.status for r in rows})}")

        if not BASELINE:
            base.log("Summary:")
            base.log(f"  phased {phased:.2f}s over {total} schemas (baseline skipped: BENCH_BASELINE=1 runs it)")
            return
        base.quiet("rollout", "bench_probe.0001")()
        base.log("Baseline: both migrations in one pass, one transaction per schema")
        started = time.monotonic()
        single = rollout_run()
        one_pass = time.monotonic() - started
        assert not single.failed

        base.log("Summary:")
        base.log(f"  phased {phased:.2f}s, one pass {one_pass:.2f}s, ratio phased/one pass "
                 f"{phased / one_pass:.2f}x over {total} schemas")
    finally:
        from django.db import connections

        try:
            connections.close_all()
        except Exception:  # noqa: BLE001
            pass
        base.drop_database(admin_kwargs)
        shutil.rmtree(app_root, ignore_errors=True)


if __name__ == "__main__":
    main()
