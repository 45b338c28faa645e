"""The schema (``schema.sql`` and ``schema_<version>.sql`` beside this module), its
version, and where a URL points."""

from __future__ import annotations

import sqlite3
from functools import cache
from importlib import resources
from urllib.parse import unquote, urlsplit

from ..._errors import AdapterError
from ..._migration import AppliedMigration, MigrationReport
from ..._urls import redact

__all__ = ["SCHEMA_VERSION", "apply_schema", "check_schema", "path_from_url", "statements"]

SCHEMA_VERSION = 5
"""The version ``apply_schema`` brings a file to (kept in ``PRAGMA user_version``)."""

# version -> the resource that upgrades the previous version to it, and the version's name
# (PostgreSQL's migration of the same content has the same name).
_SCRIPTS = {
    1: ("schema.sql", "initial"),
    2: ("schema_2.sql", "failures_and_history"),
    3: ("schema_3.sql", "list_runs"),
    4: ("schema_4.sql", "definitions"),
    5: ("schema_5.sql", "settings"),
}


@cache
def statements(version: int = 1) -> tuple[str, ...]:
    """The SQL statements of one version's script, in order."""
    text = resources.files(__package__).joinpath(_SCRIPTS[version][0]).read_text("utf-8")
    found: list[str] = []
    buffer = ""
    for line in text.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            found.append(buffer.strip())
            buffer = ""
    if buffer.strip() and sqlite3.complete_statement(buffer + ";"):
        found.append(buffer.strip())
    return tuple(found)


def _version(conn: sqlite3.Connection) -> int:
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    return int(version)


def _tables(conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
    ).fetchall()
    return [str(row[0]) for row in rows]


def apply_schema(conn: sqlite3.Connection) -> MigrationReport:
    """Create or upgrade the schema inside the caller's write transaction; idempotent.

    Returns what it did (the file is then at ``SCHEMA_VERSION``). Raises
    ``AdapterError`` if the file was made by a newer conveyor (a higher version than this
    one knows).
    """
    current = _version(conn)
    if current > SCHEMA_VERSION:
        raise AdapterError(
            f"the SQLite file has schema version {current}; this conveyor knows up to "
            f"{SCHEMA_VERSION} (upgrade conveyor)"
        )
    if current == SCHEMA_VERSION:
        return MigrationReport(created=False, from_version=current, to_version=current)
    before = set(_tables(conn))
    pending = range(current + 1, SCHEMA_VERSION + 1)
    for version in pending:
        for statement in statements(version):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return MigrationReport(
        created=current == 0,
        from_version=current,
        to_version=SCHEMA_VERSION,
        applied=tuple(AppliedMigration(v, _SCRIPTS[v][1]) for v in pending),
        tables=tuple(t for t in _tables(conn) if t not in before),
    )


def check_schema(conn: sqlite3.Connection) -> int:
    """Raise ``AdapterError`` unless the file's schema is the current version."""
    current = _version(conn)
    if current != SCHEMA_VERSION:
        raise AdapterError(
            f"the SQLite file has schema version {current}, expected {SCHEMA_VERSION}: "
            "run `conveyor migrate --store sqlite:///path/to/file.db`"
        )
    return current


def path_from_url(url_or_path: str) -> str:
    """The file a ``sqlite:`` URL names (a plain path is returned as it is).

    ``sqlite:///relative/file.db`` is relative to the working directory and
    ``sqlite:////absolute/file.db`` absolute (SQLAlchemy's convention). In-memory
    databases cannot be shared by the adapters' connections and are refused.
    """
    if not url_or_path.startswith("sqlite:"):
        path = url_or_path
    else:
        try:
            parts = urlsplit(url_or_path)
        except ValueError:
            raise AdapterError(f"not a valid SQLite URL: {redact(url_or_path)}") from None
        if parts.netloc not in ("", "localhost"):
            raise AdapterError(
                f"not a local SQLite URL: {redact(url_or_path)} (expected "
                "sqlite:///relative.db or sqlite:////absolute/path.db)"
            )
        path = unquote(parts.path)
        if path.startswith("/"):
            path = path[1:]
    if not path or path == ":memory:" or path.startswith("file::memory:"):
        raise AdapterError(
            f"SQLite backends need a file, not {redact(url_or_path)!r} (e.g. sqlite:///conveyor.db)"
        )
    return path
