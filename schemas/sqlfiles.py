"""SQL-file migrations: parse the seed's format, check it on PostgreSQL, write a Django migration.

Statements are split and read by sqlparse (the SQL lexer Django itself uses
for `sqlmigrate`), so a keyword inside a string literal, a comment or a
dollar-quoted function body is text, not a statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
import sqlparse
from django.apps import apps as django_apps
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from psycopg import sql as pgsql
from psycopg.pq import TransactionStatus
from sqlparse import tokens as T

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
    path: str = ""  # its own file, when up and down come from two files


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


def parse(text: str, *, path: str = "<sql>", check_statements: bool = True) -> SqlFile:
    """Parse the seed's format; any defect raises ValidationError naming the file and line.

    Transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, ...) is refused
    here, trial run or not, unless `check_statements` is off for the caller to
    check each section against its own file.
    """
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
        joined = "\n".join(body)
        sql = joined.lstrip("\n")
        # Leading empty lines are dropped: count them, so line numbers still point into the file.
        return SqlSection(sql=sql.rstrip("\n") + "\n", first_line=first + len(joined) - len(sql))

    parsed = SqlFile(path=path, version=version, name=name, type=type_,
                     description=headers.get("description", ("", 0))[0], up=section("up"), down=section("down"))
    if check_statements:
        for part in (parsed.up, parsed.down):
            refuse_transaction_control(part, path=path)
    return parsed


@dataclass(frozen=True)
class SqlStatement:
    sql: str  # one statement, as sqlparse delimits it (comments around it included)
    offset: int  # where it starts in its section
    line: int  # line of the file where its first keyword is
    words: tuple[str, ...]  # its first two words, upper-cased: ("CREATE", "TABLE")


def statements(section: SqlSection) -> list[SqlStatement]:
    """The section's statements; comments and blank text between them are not statements."""
    result, offset = [], 0
    for statement in sqlparse.parse(section.sql):
        text = str(statement)
        words, start = [], None
        position = offset
        for token in statement.flatten():
            if token.is_whitespace or token.ttype in T.Comment or token.ttype is T.Punctuation and not words:
                position += len(token.value)
                continue
            if start is None:
                start = position
            if len(words) < 2 and token.ttype not in T.Punctuation:
                words.append(token.value.upper())
            if len(words) == 2:
                break
            position += len(token.value)
        if start is not None:
            line = section.first_line + section.sql[:start].count("\n")
            result.append(SqlStatement(sql=text, offset=offset, line=line, words=tuple(words)))
        offset += len(text)
    return result


# Statements that begin, end or nest a transaction. Django runs each migration in a transaction of its own;
# one of these would end it half-way (COMMIT) or let the rest run outside it.
_TRANSACTION_CONTROL = {"BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"}


def refuse_transaction_control(section: SqlSection, *, path: str) -> None:
    for statement in statements(section):
        first = statement.words[0] if statement.words else ""
        second = statement.words[1] if len(statement.words) > 1 else ""
        if first in _TRANSACTION_CONTROL or (first == "PREPARE" and second == "TRANSACTION"):
            shown = f"{first} {second}" if first in ("START", "PREPARE") else first
            raise _error(path, statement.line,
                         f"{shown} controls the transaction, which is not the SQL file's to control: Django runs "
                         f"each migration in a transaction of its own. Remove the statement.")


def _probe_schema(app_label: str) -> str:
    """A schema where the app's tables live, to try the SQL against (then roll back)."""
    from schemas.graph import apps_for
    from schemas.selectors import tenant_schema_names

    if app_label in apps_for("__tenant__"):
        tenants = tenant_schema_names()
        if tenants:
            return tenants[0]
    return settings.PUBLIC_SCHEMA_NAME


TRIAL_LOCK_TIMEOUT = "10s"  # a trial waiting on a tenant's busy table gives up instead of queueing its traffic
_TRIAL_CANNOT_COMMIT = "CT001"

# A transaction that cannot commit: at COMMIT (or PREPARE TRANSACTION) PostgreSQL fires deferred
# constraint triggers, and this one refuses. Temporary objects: they go with the trial's connection.
_TRIAL_GUARD = [
    "CREATE FUNCTION pg_temp.courtside_trial_cannot_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION 'the trial run of a SQL migration cannot commit' USING ERRCODE = 'CT001'; END $$",
    "CREATE TEMPORARY TABLE courtside_trial_guard (armed boolean)",
    "CREATE CONSTRAINT TRIGGER courtside_trial_guard AFTER INSERT ON pg_temp.courtside_trial_guard "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pg_temp.courtside_trial_cannot_commit()",
    "INSERT INTO pg_temp.courtside_trial_guard VALUES (true)",
]


def _trial_connection() -> psycopg.Connection:
    """A connection of the trial's own to the project's database, in a transaction from its first statement."""
    params = {k: v for k, v in connection.get_connection_params().items() if k not in ("cursor_factory", "context")}
    return psycopg.connect(**params, autocommit=False, application_name="courtside sqlmigration trial")


def verify(sql_file: SqlFile, *, app_label: str, schema_name: str | None = None) -> str:
    """Run up, then down, then up again in a real schema, where nothing the SQL does can outlive the trial.

    PostgreSQL's DDL is transactional, so this proves both directions against
    the real tables. The trial runs on a connection of its own, closed at the
    end, so session state (advisory locks, SET, PREPARE) dies with it; one
    statement at a time through the extended protocol, which takes exactly one,
    so no statement hides behind another; in a transaction that is always
    rolled back and cannot commit (a deferred trigger refuses any COMMIT), and
    that stops at once if a statement ends it another way (ROLLBACK). Returns
    the schema used.
    """
    schema_name = schema_name or _probe_schema(app_label)
    trial = _trial_connection()
    try:
        with trial.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema_name])
            if cursor.fetchone() is None:
                raise ValidationError(f"No schema {schema_name!r} to try the SQL on.", code="sql_file")
            cursor.execute(pgsql.SQL("SET LOCAL search_path TO {}, public").format(pgsql.Identifier(schema_name)))
            cursor.execute(pgsql.SQL("SET LOCAL lock_timeout = {}").format(pgsql.Literal(TRIAL_LOCK_TIMEOUT)))
            for statement in _TRIAL_GUARD:
                cursor.execute(statement)
            for label, section in (("up", sql_file.up), ("down", sql_file.down), ("up", sql_file.up)):
                for statement in statements(section):
                    _trial_execute(trial, cursor, sql_file.path, label, section, statement)
    finally:
        try:
            trial.rollback()
        finally:
            trial.close()
    return schema_name


def _trial_execute(trial, cursor, path: str, label: str, section: SqlSection, statement: SqlStatement) -> None:
    path = section.path or path
    try:
        with trial.pipeline():  # the extended protocol: one statement per call, never a hidden second
            cursor.execute(statement.sql)
    except psycopg.Error as error:
        if error.sqlstate == _TRIAL_CANNOT_COMMIT:
            raise _error(path, statement.line, f"the {label} SQL commits; the trial refused it and kept nothing."
                         ) from error
        position = getattr(error.diag, "statement_position", None)
        line = (section.first_line + section.sql[: statement.offset + int(position) - 1].count("\n")
                if position else statement.line)
        message = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise _error(path, line, f"PostgreSQL refused the {label} SQL: {message}") from error
    if trial.info.transaction_status != TransactionStatus.INTRANS:
        raise _error(path, statement.line, f"the {label} SQL ends the transaction; the trial stopped there and "
                     f"kept nothing.")


def _literal(sql: str) -> str:
    if '"""' not in sql and "\\" not in sql:
        return f'"""\n{sql}"""'
    return repr(sql)


def render(sql_file: SqlFile, *, app_label: str, dependency: tuple[str, str] | None, source: str,
           sources: list[str] | None = None) -> str:
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
        f"    sql_file_type = {sql_file.type!r}\n"
        f"    # Checksummed with this file: an edit to the SQL after generation is drift.\n"
        f"    sql_file_sources = {list(sources or [])!r}\n\n"
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
                    skip_verify: bool = False, sources: list[str] | None = None) -> Path:
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
    # The SQL file(s) by absolute path: checksummed with the migration, so a later edit to them is drift.
    sources = [str(Path(p).resolve()) for p in (sources if sources is not None else [source]) if p]
    text = render(sql_file, app_label=app_label, dependency=(app_label, latest) if latest else None, source=source,
                  sources=sources)
    compile(text, str(target), "exec")  # never write a file Python cannot import
    target.write_text(text)
    return target


MAX_SQL_FILE_BYTES = 1024 * 1024  # a migration, not a data dump (and sqlparse reads it whole)


def read_sql_text(path: str) -> str:
    """A SQL file's text: UTF-8 (a byte-order mark is allowed), no NUL bytes, at most MAX_SQL_FILE_BYTES."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SQL_FILE_BYTES + 1)
    except OSError as error:
        raise ValidationError(f"{path}: {error.strerror}.") from error
    if len(data) > MAX_SQL_FILE_BYTES:
        raise ValidationError(f"{path}: larger than {MAX_SQL_FILE_BYTES // (1024 * 1024)} MB; a migration should "
                              f"not carry data in bulk.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise ValidationError(f"{path}, line {line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save the "
                              f"file as UTF-8.", code="sql_file") from error
    if "\x00" in text:
        raise ValidationError(f"{path}, line {text[: text.index(chr(0))].count(chr(10)) + 1}: a NUL byte; "
                              f"PostgreSQL cannot take it in SQL.", code="sql_file")
    return text


def sql_file_load(*, path: str | None = None, name: str | None = None, up: str | None = None,
                  down: str | None = None, type_: str = "schema", description: str = "") -> SqlFile:
    """Either one file in the seed's format, or a name with separate up and down files."""
    if path:
        return parse(read_sql_text(path), path=path)
    if not (name and up and down):
        raise ValidationError("Give --from FILE, or --name with both --up FILE and --down FILE.")
    up_text, down_text = read_sql_text(up), read_sql_text(down)
    header = (f"-- version: {timezone.now():%Y%m%d%H%M%S}\n-- name: {name}\n-- type: {type_}\n"
              f"-- description: {description}\n-- up:\n")
    middle = f"{up_text}\n-- down:\n"
    # Reassembled in the seed's format so one parser checks both ways; then each section's line numbers
    # and errors refer to its own file.
    parsed = parse(f"{header}{middle}{down_text}\n", path=up, check_statements=False)
    parsed.up = SqlSection(sql=parsed.up.sql, first_line=parsed.up.first_line - header.count("\n"), path=up)
    parsed.down = SqlSection(sql=parsed.down.sql, path=down,
                             first_line=parsed.down.first_line - (header + middle).count("\n"))
    for section in (parsed.up, parsed.down):
        refuse_transaction_control(section, path=section.path)
    parsed.path = up
    return parsed
