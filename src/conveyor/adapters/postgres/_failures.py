"""``Failures``: failed attempts (``RecordsFailures``) and run history (``KeepsHistory``)
on PostgreSQL.

``record`` is one statement: ``INSERT ... SELECT ... WHERE EXISTS`` (the run at the
failure's version, its row locked ``FOR SHARE`` so that a record write committing at the
same moment is either seen, and nothing is kept, or waits for the insert) ``ON CONFLICT
... DO UPDATE`` (the same key replaces). The record itself is not written. History rows
are inserted by the record writes' own statements (``_record_sql``); here they are read,
each with its version's failures, in one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..._capabilities import Failure, HistoryEntry
from .._rows import failure_of, history_entries
from ._database import Database
from ._options import Tables

__all__ = ["FailureSQL", "Failures"]

_COLUMNS = (
    ("workflow_name", "text"),
    ("run_id", "text"),
    ("version", "bigint"),
    ("attempt", "integer"),
    ("process", "text"),
    ("error_type", "text"),
    ("message", "text"),
    ("failed_at", "timestamptz"),
    ("next_attempt_at", "timestamptz"),
)
_NAMES = ", ".join(name for name, _ in _COLUMNS)


@dataclass(frozen=True, slots=True)
class FailureSQL:
    """The statements of one installation (its ``Tables``)."""

    record: str
    """Parameters: the ``Failure``'s fields in ``_COLUMNS`` order."""
    failures: str
    """``$1`` run ID: every failure of the run, by version and attempt."""
    failures_of_version: str
    """``$1`` run ID, ``$2`` version."""
    retries_due: str
    """``$1`` workflow, ``$2`` process, ``$3`` limit."""
    history: str
    """``$1`` run ID: history rows joined to their failures, by version and attempt."""

    @classmethod
    def build(cls, t: Tables) -> FailureSQL:
        values = ", ".join(f"${i}::{kind}" for i, (_, kind) in enumerate(_COLUMNS, 1))
        sets = ", ".join(
            f"{name} = excluded.{name}"
            for name, _ in _COLUMNS
            if name not in ("run_id", "version", "attempt")
        )
        select = f"SELECT {_NAMES} FROM {t.failures}"
        due_columns = ", ".join(f"f.{name}" for name, _ in _COLUMNS)
        return cls(
            record=f"""INSERT INTO {t.failures} ({_NAMES})
SELECT {values}
WHERE EXISTS (
    SELECT 1 FROM {t.records} WHERE run_id = $2::text AND version = $3::bigint FOR SHARE
)
ON CONFLICT (run_id, version, attempt) DO UPDATE SET {sets}
RETURNING 1""",
            failures=f"{select} WHERE run_id = $1 ORDER BY version, attempt",
            failures_of_version=f"{select} WHERE run_id = $1 AND version = $2 ORDER BY attempt",
            retries_due=f"""SELECT {due_columns}
FROM {t.failures} f JOIN {t.records} r ON r.run_id = f.run_id AND r.version = f.version
WHERE f.workflow_name = $1 AND f.process = $2 AND f.next_attempt_at IS NOT NULL
    AND NOT EXISTS (
        SELECT 1 FROM {t.failures} g
        WHERE g.run_id = f.run_id AND g.version = f.version AND g.attempt > f.attempt
    )
ORDER BY f.next_attempt_at, f.run_id
LIMIT $3""",
            history=f"""SELECT h.version, h.status, h.run_state, h.reason, h.at,
    f.workflow_name, f.attempt, f.process, f.error_type, f.message, f.failed_at,
    f.next_attempt_at
FROM {t.history} h
    LEFT JOIN {t.failures} f ON f.run_id = h.run_id AND f.version = h.version
WHERE h.run_id = $1
ORDER BY h.version, f.attempt""",
        )


def _failure(row: asyncpg.Record) -> Failure:
    return failure_of(row, _as_datetime)


class Failures:
    """The failure and history statements of a record store (module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.sql = FailureSQL.build(db.tables)

    async def record(self, f: Failure) -> bool:
        """Keep ``f`` if its run is at ``f.version``; whether it was. Raises
        ``AdapterError``."""
        rows = await self._db.write(
            "recording a failure",
            self.sql.record,
            f.workflow_name,
            f.run_id,
            f.version,
            f.attempt,
            f.process,
            f.error_type,
            f.message,
            f.failed_at,
            f.next_attempt_at,
        )
        return bool(rows)

    async def failures(self, run_id: str, version: int | None) -> list[Failure]:
        """The run's failures by version and attempt (only ``version``'s if given)."""
        if version is None:
            rows = await self._db.fetch("reading failures", self.sql.failures, run_id)
        else:
            rows = await self._db.fetch(
                "reading failures", self.sql.failures_of_version, run_id, version
            )
        return [_failure(row) for row in rows]

    async def retries_due(self, workflow_name: str, process: str, limit: int) -> list[Failure]:
        """See ``RecordsFailures.retries_due``."""
        rows = await self._db.fetch(
            "reading the retries due", self.sql.retries_due, workflow_name, process, max(0, limit)
        )
        return [_failure(row) for row in rows]

    async def history(self, run_id: str) -> list[HistoryEntry]:
        """The run's history, oldest first, each entry with its version's failures."""
        rows = await self._db.fetch("reading a run's history", self.sql.history, run_id)
        return history_entries(rows, run_id, _as_datetime)


def _as_datetime(value: object) -> datetime:
    """asyncpg returns ``timestamptz`` columns as aware datetimes already."""
    assert isinstance(value, datetime)
    return value
