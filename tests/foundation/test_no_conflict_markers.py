"""No file of the project keeps a merge's conflict markers (one once reached main inside a YAML defaults file)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {".venv", "var", ".git", "node_modules", "__pycache__", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".json", ".toml", ".md", ".html", ".txt", ".sql", ".cfg", ".ini", ""}


def project_text_files():
    for path in ROOT.rglob("*"):
        if path.is_file() and not SKIPPED_DIRS.intersection(path.relative_to(ROOT).parts) \
                and path.suffix in TEXT_SUFFIXES:
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
