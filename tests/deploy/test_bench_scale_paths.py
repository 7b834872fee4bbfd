"""bench/scale.py imports its helpers from tests/ (pgbouncer.py) and bench/ (serving.py) without shadowing the
project's apps: tests/ holds packages named like them (tests/schemas, tests/tenants), and with tests/ first on
sys.path Django took tests/schemas for the schemas app (no `rollout` command, no admin templates: the bench died
at its first no-op check with "Unknown command: 'rollout'")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("bench_scale", {bench!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.require_pgbouncer()
for name in ("schemas", "tenants", "core"):
    print(name, importlib.util.find_spec(name).origin)
"""


def test_the_project_apps_are_found_before_the_tests_packages_after_the_pgbouncer_check():
    done = subprocess.run([sys.executable, "-c", PROBE.format(bench=str(ROOT / "bench" / "scale.py"))],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    origins = dict(line.split(" ", 1) for line in done.stdout.splitlines()
                   if line.startswith(("schemas ", "tenants ", "core ")))
    assert origins == {name: str(ROOT / name / "__init__.py") for name in ("schemas", "tenants", "core")}
