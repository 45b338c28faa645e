"""Failed attempts (``RecordsFailures``) and run history (``KeepsHistory``) in SQLite: the
statements, run on the ``Database``'s connections by ``SQLiteRecordStore``.

``record_failure`` is one ``BEGIN IMMEDIATE`` transaction whose insert happens only if
the run is still at the failure's version (the write lock keeps any record write out
between the compare and the insert). ``written`` runs inside each record write's own
transaction, right after the record: it adds the version's history row (unless the store
keeps none) and, for a write to DataDeleted, empties the run's failure messages.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from ..._capabilities import Failure, HistoryEntry
from ..._record import Record
from ..._runstate import RunState
from .._rows import failure_of, history_entries
from ._db import from_us, to_us

__all__ = [
    "SELECT_DUE",
    "SELECT_FAILURES",
    "SELECT_HISTORY",
    "failures",
    "history",
    "record_failure",
    "retries_due",
    "written",
]

_COLUMNS = (
    "workflow_name, run_id, version, attempt, process, error_type, message, failed_at, "
    "next_attempt_at"
)
_RECORD = (
    f"INSERT OR REPLACE INTO failures ({_COLUMNS}) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM records WHERE run_id = ? AND version = ?)"
)
_SELECT = "SELECT " + ", ".join(f"f.{c.strip()}" for c in _COLUMNS.split(",")) + " FROM failures f"
# The latest failure of each run still at its version, made by the process and due: walks
# the process's due failures in the order wanted.
SELECT_DUE = (
    f"{_SELECT} JOIN records r ON r.run_id = f.run_id AND r.version = f.version "
    "WHERE f.workflow_name = ? AND f.process = ? AND f.next_attempt_at IS NOT NULL "
    "AND NOT EXISTS ("
    "SELECT 1 FROM failures g "
    "WHERE g.run_id = f.run_id AND g.version = f.version AND g.attempt > f.attempt) "
    "ORDER BY f.next_attempt_at, f.run_id LIMIT ?"
)
SELECT_FAILURES = f"{_SELECT} WHERE f.run_id = ? ORDER BY f.version, f.attempt"
# History rows joined to their failures (one statement: one snapshot of both tables).
SELECT_HISTORY = (
    "SELECT h.version, h.status, h.run_state, h.reason, h.at, f.workflow_name, f.attempt, "
    "f.process, f.error_type, f.message, f.failed_at, f.next_attempt_at "
    "FROM history h LEFT JOIN failures f ON f.run_id = h.run_id AND f.version = h.version "
    "WHERE h.run_id = ? ORDER BY h.version, f.attempt"
)
_HISTORY = (
    "INSERT OR REPLACE INTO history (run_id, version, status, run_state, reason, at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_SCRUB = "UPDATE failures SET message = '' WHERE run_id = ? AND message != ''"
_STATES = {int(s): s for s in RunState}


def _failure(row: sqlite3.Row) -> Failure:
    return failure_of(row, _from_us)


def record_failure(conn: sqlite3.Connection, f: Failure) -> bool:
    """Insert (or replace) ``f`` if its run is at ``f.version``; whether it was."""
    due = None if f.next_attempt_at is None else to_us(f.next_attempt_at)
    cur = conn.execute(
        _RECORD,
        (
            f.workflow_name,
            f.run_id,
            f.version,
            f.attempt,
            f.process,
            f.error_type,
            f.message,
            to_us(f.failed_at),
            due,
            f.run_id,
            f.version,
        ),
    )
    return cur.rowcount > 0


def failures(conn: sqlite3.Connection, run_id: str, version: int | None) -> list[Failure]:
    """The run's failures by version and attempt (only ``version``'s if given)."""
    if version is None:
        rows = conn.execute(SELECT_FAILURES, (run_id,)).fetchall()
    else:
        rows = conn.execute(
            f"{_SELECT} WHERE f.run_id = ? AND f.version = ? ORDER BY f.attempt",
            (run_id, version),
        ).fetchall()
    return [_failure(row) for row in rows]


def retries_due(
    conn: sqlite3.Connection, workflow_name: str, process: str, limit: int
) -> list[Failure]:
    """See ``RecordsFailures.retries_due``."""
    rows = conn.execute(SELECT_DUE, (workflow_name, process, max(0, limit))).fetchall()
    return [_failure(row) for row in rows]


def history(conn: sqlite3.Connection, run_id: str) -> list[HistoryEntry]:
    """The run's history rows, oldest first, each with its version's failures."""
    rows = conn.execute(SELECT_HISTORY, (run_id,)).fetchall()
    return history_entries(rows, run_id, _from_us)


def written(conn: sqlite3.Connection, record: Record, *, keep_history: bool) -> None:
    """What an applied record write adds in its transaction (see the module docstring)."""
    if keep_history:
        conn.execute(
            _HISTORY,
            (
                record.run_id,
                record.meta.version,
                int(record.status),
                int(record.run_state),
                record.meta.run_state_reason,
                to_us(record.updated_at),
            ),
        )
    if record.run_state == RunState.DATA_DELETED:
        conn.execute(_SCRUB, (record.run_id,))


def _from_us(value: object) -> datetime:
    assert isinstance(value, int)
    return from_us(value)
