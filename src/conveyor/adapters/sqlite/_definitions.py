"""Registered workflow definitions (``KeepsDefinitions``) in SQLite: the statements, run on
the ``Database``'s connections by ``SQLiteRecordStore``.

``register`` runs inside one write transaction (``BEGIN IMMEDIATE``): it reads the
workflow's latest version and inserts the next one only if the hash differs, so
concurrent registrations (other tasks, other processes) of one document keep one version.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from ..._capabilities import DefinitionRecord
from ._db import from_us, to_us

__all__ = ["definitions", "register", "versions"]

_COLUMNS = "workflow_name, version, hash, document, registered_at"
_LATEST = (
    f"SELECT {_COLUMNS} FROM definitions WHERE workflow_name = ? ORDER BY version DESC LIMIT 1"
)


def _definition(row: sqlite3.Row) -> DefinitionRecord:
    return DefinitionRecord(
        workflow_name=row["workflow_name"],
        version=row["version"],
        hash=row["hash"],
        document=row["document"],
        registered_at=from_us(row["registered_at"]),
    )


def register(
    conn: sqlite3.Connection, workflow_name: str, hash: str, document: str, at: datetime
) -> DefinitionRecord:
    """The latest definition if its hash is ``hash``, else the new version inserted."""
    latest = conn.execute(_LATEST, (workflow_name,)).fetchone()
    if latest is not None and latest["hash"] == hash:
        return _definition(latest)
    version = 1 if latest is None else latest["version"] + 1
    conn.execute(
        f"INSERT INTO definitions ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
        (workflow_name, version, hash, document, to_us(at)),
    )
    return DefinitionRecord(workflow_name, version, hash, document, from_us(to_us(at)))


def definitions(conn: sqlite3.Connection) -> list[DefinitionRecord]:
    """The latest definition of every workflow, by workflow name."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM definitions d WHERE version = "
        "(SELECT max(version) FROM definitions WHERE workflow_name = d.workflow_name) "
        "ORDER BY workflow_name"
    ).fetchall()
    return [_definition(row) for row in rows]


def versions(conn: sqlite3.Connection, workflow_name: str) -> list[DefinitionRecord]:
    """Every version of one workflow's definition, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM definitions WHERE workflow_name = ? ORDER BY version",
        (workflow_name,),
    ).fetchall()
    return [_definition(row) for row in rows]
