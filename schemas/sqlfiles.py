"""SQL-file migrations: parse the seed's format, check it on PostgreSQL, write a Django migration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from django.apps import apps as django_apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from schemas.graph import load_graph

TYPES = ("schema", "data", "hybrid")
HEADERS = ("version", "name", "type", "description")
_HEADER = re.compile(r"^--\s*(?P<key>[a-z]+)\s*:\s*(?P<value>.*?)\s*$", re.IGNORECASE)
_SECTION = re.compile(r"^--\s*(?P<key>up|down)\s*:\s*$", re.IGNORECASE)
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,80}$")


@dataclass
class SqlSection:
    sql: str
    first_line: int  # 1-based line in the file where the SQL starts


@dataclass
class SqlFile:
    path: str
    version: str
    name: str
    type: str
    description: str
    up: SqlSection
    down: SqlSection | None


def _error(path: str, line: int, message: str) -> ValidationError:
    return ValidationError(f"{path}, line {line}: {message}", code="sql_file")


def parse(text: str, *, path: str = "<sql>") -> SqlFile:
    """Parse the seed's format; any defect raises ValidationError naming the file and line."""
    lines = text.splitlines()
    headers: dict[str, tuple[str, int]] = {}
    sections: dict[str, list] = {}
    current = None
    for number, line in enumerate(lines, start=1):
        section = _SECTION.match(line.strip())
        if section:
            key = section.group("key").lower()
            if key in sections:
                raise _error(path, number, f"a second '-- {key}:' section.")
            if key == "down" and "up" not in sections:
                raise _error(path, number, "'-- down:' comes before '-- up:'.")
            sections[key] = [number + 1, []]
            current = key
            continue
        if current is None:
            if not line.strip():
                continue
            header = _HEADER.match(line.strip())
            if not header:
                raise _error(path, number, "expected a '-- key: value' header line or '-- up:'.")
            key = header.group("key").lower()
            if key not in HEADERS:
                raise _error(path, number, f"unknown header {key!r}; expected one of {', '.join(HEADERS)}.")
            headers[key] = (header.group("value"), number)
        else:
            sections[current][1].append(line)

    for key in ("version", "name", "type"):
        if key not in headers:
            raise _error(path, 1, f"missing header '-- {key}: ...'.")
    type_, type_line = headers["type"]
    type_ = type_.split()[0].lower() if type_ else ""
    if type_ not in TYPES:
        raise _error(path, type_line, f"unknown type {headers['type'][0]!r}; expected one of {', '.join(TYPES)}.")
    name, name_line = headers["name"]
    if not _NAME.match(name):
        raise _error(path, name_line, f"name {name!r} must be lowercase letters, digits and underscores.")
    version, version_line = headers["version"]
    if not version:
        raise _error(path, version_line, "empty version.")
    if "up" not in sections or not "\n".join(sections["up"][1]).strip():
        line = sections["up"][0] - 1 if "up" in sections else len(lines) or 1
        raise _error(path, line, "no SQL in an '-- up:' section.")
    if "down" not in sections or not "\n".join(sections["down"][1]).strip():
        line = sections["down"][0] - 1 if "down" in sections else len(lines) or 1
        raise _error(path, line, "no SQL in a '-- down:' section: a migration must be reversible.")

    def section(key):
        first, body = sections[key]
        return SqlSection(sql="\n".join(body).strip("\n") + "\n", first_line=first)

    return SqlFile(path=path, version=version, name=name, type=type_,
                   description=headers.get("description", ("", 0))[0], up=section("up"), down=section("down"))


def split_statements(sql: str) -> list[tuple[int, str]]:
    """[(offset, statement)] split on top-level semicolons; quotes, comments and $$ bodies respected."""
    statements, start, i, n = [], 0, 0, len(sql)
    while i < n:
        char = sql[i]
        if char in ("'", '"'):
            end = sql.find(char, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == char:  # doubled quote inside
                end = sql.find(char, end + 2)
            i = n if end == -1 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end == -1 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end == -1 else end + 2
        elif char == "$" and (tag := re.match(r"\$[A-Za-z_]*\$", sql[i:])):
            end = sql.find(tag.group(0), i + len(tag.group(0)))
            i = n if end == -1 else end + len(tag.group(0))
        elif char == ";":
            statements.append((start, sql[start:i + 1]))
            start = i = i + 1
        else:
            i += 1
    if sql[start:].strip():
        statements.append((start, sql[start:]))
    return [(offset + len(text) - len(text.lstrip()), text) for offset, text in statements if text.strip()]


def _position(error: DatabaseError) -> int | None:
    position = getattr(getattr(getattr(error, "__cause__", None), "diag", None), "statement_position", None)
    return int(position) if position else None


def _failing_line(cursor, section: SqlSection, error: DatabaseError) -> int:
    """Line of the file where PostgreSQL's error is: its cursor position, else the failing statement's start."""
    position = _position(error)
    if position:
        return section.first_line + section.sql[: position - 1].count("\n")
    # Errors such as "table does not exist" carry no position: replay statement by statement.
    for offset, statement in split_statements(section.sql):
        sid = transaction.savepoint()
        try:
            cursor.execute(statement)
        except DatabaseError as inner:
            transaction.savepoint_rollback(sid)
            inner_position = _position(inner)
            if inner_position:
                offset += inner_position - 1
            return section.first_line + section.sql[:offset].count("\n")
        transaction.savepoint_commit(sid)
    return section.first_line


def _probe_schema(app_label: str) -> str:
    """A schema where the app's tables live, to try the SQL against (then roll back)."""
    from schemas.graph import apps_for
    from schemas.selectors import tenant_schema_names

    if app_label in apps_for("__tenant__"):
        tenants = tenant_schema_names()
        if tenants:
            return tenants[0]
    return settings.PUBLIC_SCHEMA_NAME


def verify(sql_file: SqlFile, *, app_label: str, schema_name: str | None = None) -> str:
    """Run up, then down, then up again in a real schema inside a transaction that is rolled back.

    PostgreSQL's DDL is transactional, so this proves both directions against
    the real tables and leaves nothing behind. Returns the schema used.
    """
    from django_tenants.utils import schema_context

    schema_name = schema_name or _probe_schema(app_label)
    # schema_context, not SET LOCAL: django-tenants resets search_path on every new cursor (savepoints too).
    with schema_context(schema_name), transaction.atomic():
        sid = transaction.savepoint()
        try:
            with connection.cursor() as cursor:
                for label, section in (("up", sql_file.up), ("down", sql_file.down), ("up", sql_file.up)):
                    section_sid = transaction.savepoint()
                    try:
                        cursor.execute(section.sql)
                    except DatabaseError as error:
                        transaction.savepoint_rollback(section_sid)
                        raise _error(sql_file.path, _failing_line(cursor, section, error),
                                     f"PostgreSQL refused the {label} SQL: {str(error).strip().splitlines()[0]}"
                                     ) from error
        finally:
            transaction.savepoint_rollback(sid)
    return schema_name


def _literal(sql: str) -> str:
    if '"""' not in sql and "\\" not in sql:
        return f'"""\n{sql}"""'
    return repr(sql)


def render(sql_file: SqlFile, *, app_label: str, dependency: tuple[str, str] | None, source: str) -> str:
    dependencies = f"[({dependency[0]!r}, {dependency[1]!r})]" if dependency else "[]"
    elidable = "False"
    return (
        f"# Generated by `manage.py sqlmigration` from {source} on {timezone.now():%Y-%m-%d %H:%M} UTC.\n"
        f"# SQL-file version {sql_file.version}, type {sql_file.type}. Edit the SQL file and regenerate\n"
        f"# only while this migration is unapplied everywhere: the ledger checksums this file.\n\n"
        f"from django.db import migrations\n\n\n"
        f"class Migration(migrations.Migration):\n"
        f"    {repr(sql_file.description or sql_file.name)}\n\n"
        f"    sql_file_version = {sql_file.version!r}\n"
        f"    sql_file_type = {sql_file.type!r}\n\n"
        f"    dependencies = {dependencies}\n\n"
        f"    operations = [\n"
        f"        migrations.RunSQL(\n"
        f"            sql={_literal(sql_file.up.sql)},\n"
        f"            reverse_sql={_literal(sql_file.down.sql)},\n"
        f"            elidable={elidable},\n"
        f"        ),\n"
        f"    ]\n"
    )


def migration_write(*, app_label: str, sql_file: SqlFile, source: str, verify_schema: str | None = None,
                    skip_verify: bool = False) -> Path:
    """Turn a parsed SQL file into the app's next migration; writes nothing if any check fails."""
    try:
        config = django_apps.get_app_config(app_label)
    except LookupError as error:
        raise ValidationError(f"No installed app {app_label!r}.") from error
    graph = load_graph()
    leaves = [name for app, name in graph.loader.graph.leaf_nodes() if app == app_label]
    if len(leaves) > 1:
        raise ValidationError(f"{app_label} has {len(leaves)} leaf migrations ({', '.join(leaves)}); merge first.")
    from django.db.migrations.loader import MigrationLoader

    module_name, _ = MigrationLoader.migrations_module(app_label)
    import importlib

    try:
        package = importlib.import_module(module_name)
        folder = Path(package.__file__).parent
    except (ImportError, TypeError):
        folder = Path(config.path) / "migrations"
        if not folder.exists():
            raise ValidationError(f"{app_label} has no migrations folder.") from None
    latest = leaves[0] if leaves else None
    number = int(latest.split("_", 1)[0]) + 1 if latest and latest[:4].isdigit() else 1
    target = folder / f"{number:04d}_{sql_file.name}.py"
    if target.exists():
        raise ValidationError(f"{target} already exists.")
    if not skip_verify:
        verify(sql_file, app_label=app_label, schema_name=verify_schema)
    text = render(sql_file, app_label=app_label, dependency=(app_label, latest) if latest else None, source=source)
    compile(text, str(target), "exec")  # never write a file Python cannot import
    target.write_text(text)
    return target


def sql_file_load(*, path: str | None = None, name: str | None = None, up: str | None = None,
                  down: str | None = None, type_: str = "schema", description: str = "") -> SqlFile:
    """Either one file in the seed's format, or a name with separate up and down files."""
    if path:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ValidationError(f"{path}: {error.strerror}.") from error
        return parse(text, path=path)
    if not (name and up and down):
        raise ValidationError("Give --from FILE, or --name with both --up FILE and --down FILE.")
    try:
        up_text, down_text = Path(up).read_text(), Path(down).read_text()
    except OSError as error:
        raise ValidationError(f"{error.filename}: {error.strerror}.") from error
    header = (f"-- version: {timezone.now():%Y%m%d%H%M%S}\n-- name: {name}\n-- type: {type_}\n"
              f"-- description: {description}\n")
    # Reassembled in the seed's format so one parser checks both ways; line numbers refer to the up file.
    parsed = parse(f"{header}-- up:\n{up_text}\n-- down:\n{down_text}\n", path=up)
    parsed.up.first_line = 1
    parsed.down.first_line = 1
    parsed.down = SqlSection(sql=parsed.down.sql, first_line=1)
    parsed.path = up
    return parsed
