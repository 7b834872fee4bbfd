"""No file of the project keeps a merge's conflict markers (one once reached main inside a YAML defaults file)."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".venv", "var", ".git", "node_modules", "__pycache__", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".toml", ".md", ".html", ".txt", ".sql", ".cfg", ".ini", ""}


def project_text_files():
    # os.walk, not ROOT.rglob("*"): the skipped folders are pruned, not walked file by file (.venv and var are
    # tens of thousands of files; the walk took 6 s of the suite).
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [name for name in dirs if name not in SKIPPED_DIRS]
        for name in files:
            path = Path(folder, name)
            if name not in SKIPPED_DIRS and path.suffix in TEXT_SUFFIXES and path.is_file():
                yield path


def test_no_project_file_holds_merge_conflict_markers():
    offenders = []
    for path in project_text_files():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        if any(line.startswith(("<<<<<<< ", ">>>>>>> ")) for line in lines):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
