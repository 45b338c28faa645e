"""``Failures``: failed attempts (``RecordsFailures``) and run history (``KeepsHistory``)
on MySQL/MariaDB.

``record`` is one transaction: a locking read of the run at the failure's version
(``LOCK IN SHARE MODE``: a record write in flight is waited for, and once it commits the
run is no longer at that version, so nothing is kept; a write that starts later waits
for this transaction), then ``REPLACE`` (the same key
replaces). The record itself is not written. History rows are inserted by the record
writes' own transactions (``_record_writes``); here they are read, each with its
version's failures, in one query.
"""

from __future__ import annotations

from typing import Any, Final

from ..._capabilities import Failure, HistoryEntry
from .._rows import history_entries
from ._database import Cursor, Database
from ._rows import FAILURE_COLUMNS, failure, from_db, name, to_db

__all__ = ["Failures"]

_NAMES: Final = ", ".join(FAILURE_COLUMNS)
_HISTORY_COLUMNS: Final = (
    "version",
    "status",
    "run_state",
    "reason",
    "at",
    "workflow_name",
    "attempt",
    "process",
    "error_type",
    "message",
    "failed_at",
    "next_attempt_at",
)


class Failures:
    """The failure and history statements of a record store (module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        t = db.tables
        self._at_version = (
            f"SELECT 1 FROM {t.records} WHERE run_id = %s AND version = %s LOCK IN SHARE MODE"
        )
        # REPLACE (the same key replaces): no VALUES() in ON DUPLICATE KEY UPDATE, which
        # MySQL 8 deprecates and MariaDB has no alternative to.
        placeholders = ", ".join(["%s"] * len(FAILURE_COLUMNS))
        self._record = f"REPLACE INTO {t.failures} ({_NAMES}) VALUES ({placeholders})"
        select = f"SELECT {_NAMES} FROM {t.failures}"
        self._failures = f"{select} WHERE run_id = %s ORDER BY version, attempt"
        self._failures_of_version = f"{select} WHERE run_id = %s AND version = %s ORDER BY attempt"
        due_columns = ", ".join(f"f.{c}" for c in FAILURE_COLUMNS)
        self._retries_due = f"""SELECT {due_columns}
FROM {t.failures} f JOIN {t.records} r ON r.run_id = f.run_id AND r.version = f.version
WHERE f.workflow_name = %s AND f.process = %s AND f.next_attempt_at IS NOT NULL
    AND NOT EXISTS (
        SELECT 1 FROM {t.failures} g
        WHERE g.run_id = f.run_id AND g.version = f.version AND g.attempt > f.attempt
    )
ORDER BY f.next_attempt_at, f.run_id
LIMIT %s"""
        self._history = f"""SELECT h.version, h.status, h.run_state, h.reason, h.at,
    f.workflow_name, f.attempt, f.process, f.error_type, f.message, f.failed_at,
    f.next_attempt_at
FROM {t.history} h
    LEFT JOIN {t.failures} f ON f.run_id = h.run_id AND f.version = h.version
WHERE h.run_id = %s
ORDER BY h.version, f.attempt"""

    async def record(self, f: Failure) -> bool:
        """Keep ``f`` if its run is at ``f.version``; whether it was. Raises
        ``AdapterError``."""
        due = None if f.next_attempt_at is None else to_db(f.next_attempt_at)
        values = (
            f.workflow_name,
            f.run_id,
            f.version,
            f.attempt,
            f.process,
            f.error_type,
            f.message,
            to_db(f.failed_at),
            due,
        )

        async def work(cur: Cursor) -> bool:
            await cur.execute(self._at_version, (f.run_id, f.version))
            if not await cur.fetchall():
                return False
            await cur.execute(self._record, values)
            return True

        return await self._db.transaction("recording a failure", work)

    async def failures(self, run_id: str, version: int | None) -> list[Failure]:
        """The run's failures by version and attempt (only ``version``'s if given)."""
        if version is None:
            rows = await self._db.fetch("reading failures", self._failures, [run_id])
        else:
            rows = await self._db.fetch(
                "reading failures", self._failures_of_version, [run_id, version]
            )
        return [failure(row) for row in rows]

    async def retries_due(self, workflow_name: str, process: str, limit: int) -> list[Failure]:
        """See ``RecordsFailures.retries_due``."""
        rows = await self._db.fetch(
            "reading the retries due", self._retries_due, [workflow_name, process, max(0, limit)]
        )
        return [failure(row) for row in rows]

    async def history(self, run_id: str) -> list[HistoryEntry]:
        """The run's history, oldest first, each entry with its version's failures."""
        rows = await self._db.fetch("reading a run's history", self._history, [run_id])
        return history_entries([_history_row(row) for row in rows], run_id, from_db)


def _history_row(values: tuple[Any, ...]) -> dict[str, Any]:
    row = dict(zip(_HISTORY_COLUMNS, values, strict=True))
    for column in ("workflow_name", "process"):
        row[column] = name(row[column])
    return row
