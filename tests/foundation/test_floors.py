"""The floors of the house (docs/ARCHITECTURE.md): backoffice → apps → core → Django, one way.

Read from the source with ast, function-level imports included: no app module imports
backoffice (the wiring), and core imports no app. Advisory locks are taken through
core.locks only, with keys from its one table.
"""

import ast
import re
from pathlib import Path

import psycopg
import pytest

from core import locks
from tests.conftest import database_url

ROOT = Path(__file__).resolve().parents[2]
WIRING = "backoffice"
KERNEL = "core"
SKIP = {".venv", "tests", "bench", "var", "node_modules", "docs", "templates", "config", "bin"}


def _packages() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name not in SKIP)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def _offenders(package: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if name.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_no_app_imports_the_project_wiring():
    apps = [package for package in _packages() if package != WIRING]
    assert KERNEL in apps and "tenants" in apps
    offenders = [line for package in apps for line in _offenders(package, {WIRING})]
    assert offenders == [], "backoffice is the top floor; move what these need into core/ or the app:\n" + "\n".join(
        offenders)


def test_the_kernel_imports_no_app():
    apps = set(_packages()) - {KERNEL}
    offenders = _offenders(KERNEL, apps)
    assert offenders == [], "core imports Django and libraries only:\n" + "\n".join(offenders)


def test_advisory_locks_are_taken_through_the_one_table():
    """Python code takes advisory locks only in core/locks.py; SQL functions (migrations) use the table's keys."""
    pattern = re.compile(r"pg_(try_)?advisory_(xact_)?(lock|unlock)")
    offenders = []
    for package in _packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "core" / "locks.py" or "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if pattern.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "take advisory locks with core.locks.advisory_lock:\n" + "\n".join(offenders)
    keys = list(locks.ADVISORY_LOCK_KEYS.values())
    assert len(keys) == len(set(keys)), "two lock names share a key"


@pytest.mark.django_db(transaction=True)
def test_an_advisory_lock_keeps_a_second_session_out_until_the_block_ends():
    def held_elsewhere(subkey):
        with psycopg.connect(database_url(), autocommit=True) as other:
            return not other.execute("SELECT pg_try_advisory_lock(%s, hashtext(%s))",
                                     [locks.lock_key("schema-migration"), subkey]).fetchone()[0]

    with locks.advisory_lock("schema-migration", "lakers") as acquired:
        assert acquired
        assert held_elsewhere("lakers")
        assert not held_elsewhere("warriors")  # the two-key form: one lock per schema
        with psycopg.connect(database_url(), autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", [locks.lock_key("pool-refill")])
            with locks.advisory_lock("pool-refill", wait=False) as second:
                assert second is False
    assert not held_elsewhere("lakers")
    with pytest.raises(KeyError, match="ADVISORY_LOCK_KEYS"):
        with locks.advisory_lock("no-such-lock"):
            pass
