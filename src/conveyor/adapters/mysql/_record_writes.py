"""``RecordWrites``: a batch of record writes as one transaction, an outcome per write.

The transaction applies the writes in batch order, each with a statement of its own: a
new run is an ``INSERT``, any other write an ``UPDATE ... WHERE run_id = ? AND version =
?`` (the compare-and-set). InnoDB rolls back only the statement that fails with a
duplicate key, so a write refused by a unique index (its run ID exists, or its foreign ID
has an active run: ``records_one_active_run``) leaves the others of the batch standing.
The statement's row count says whether a compare-and-set applied; when it is 0 a locking
read of the run's version tells a conflict (with the version found) from a write that
changed nothing (MySQL counts changed rows, not matched ones). Then one multi-row
``INSERT`` adds the outbox rows of every write that applied, in batch order, one adds
their history rows (``REPLACE``, unless the store keeps none), and one empties the failure messages
of the runs moved to DataDeleted; ``COMMIT``. Either all of that commits, or none.

A deadlock or lock wait timeout (the server rolled the transaction back) runs the whole
batch again (``Database.transaction``); the outcomes are those of the attempt that
committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from ..._errors import VersionConflict, WorkflowError, WorkflowInProgress
from ..._protocols import RecordWrite
from ..._runstate import RunState
from ._database import Cursor, Database
from ._errors import DUPLICATE_KEY, error_code
from ._rows import COLUMNS, reached_text, to_db

__all__ = ["RecordWrites"]

_encode = msgspec.json.encode
_CHUNK: Final = 500
"""Rows per multi-row statement (well within ``max_allowed_packet``)."""
_UPDATED: Final = (
    "run_state",
    "status",
    "object",
    "updated_at",
    "version",
    "run_state_reason",
    "status_description",
    "trace_origin",
    "reached",
)
_OUTBOX: Final = ("id", "workflow_name", "run_id", "type", "headers", "created_at")
_HISTORY: Final = ("run_id", "version", "status", "run_state", "reason", "at")


def _values(write: RecordWrite) -> dict[str, object]:
    r = write.record
    m = r.meta
    return {
        "workflow_name": r.workflow_name,
        "foreign_id": r.foreign_id,
        "run_id": r.run_id,
        "run_state": int(r.run_state),
        "status": int(r.status),
        "object": r.object,
        "created_at": to_db(r.created_at),
        "updated_at": to_db(r.updated_at),
        "version": m.version,
        "run_state_reason": m.run_state_reason,
        "status_description": m.status_description,
        "trace_origin": m.trace_origin,
        "reached": reached_text(m.reached),
    }


def _outbox_row(write: RecordWrite) -> tuple[object, ...]:
    e = write.outbox
    headers = _encode(dict(e.headers))
    return (e.id, e.workflow_name, e.run_id, int(e.type), headers, to_db(e.created_at))


def _history_row(write: RecordWrite) -> tuple[object, ...]:
    r = write.record
    return (
        r.run_id,
        r.meta.version,
        int(r.status),
        int(r.run_state),
        r.meta.run_state_reason,
        to_db(r.updated_at),
    )


def _placeholders(count: int) -> str:
    return "(" + ", ".join(["%s"] * count) + ")"


class RecordWrites:
    """The write statements of one installation (see the module docstring)."""

    def __init__(self, db: Database, *, history: bool) -> None:
        self._db = db
        t = db.tables
        self._insert = (
            f"INSERT INTO {t.records} ({', '.join(COLUMNS)}) VALUES {_placeholders(len(COLUMNS))}"
        )
        sets = ", ".join(f"{c} = %s" for c in _UPDATED)
        self._update = f"UPDATE {t.records} SET {sets} WHERE run_id = %s AND version = %s"
        self._version = f"SELECT version FROM {t.records} WHERE run_id = %s"
        self._locked_version = self._version + " FOR UPDATE"
        self._outbox = f"INSERT INTO {t.outbox} ({', '.join(_OUTBOX)}) VALUES "
        # REPLACE: a version's row is the last write of it (as PostgreSQL's upsert).
        self._history = (
            f"REPLACE INTO {t.history} ({', '.join(_HISTORY)}) VALUES " if history else ""
        )
        self._scrub = f"UPDATE {t.failures} SET message = '' WHERE message <> '' AND run_id IN "

    async def store(self, writes: Sequence[RecordWrite]) -> list[WorkflowError | None]:
        """Apply ``writes`` in one transaction; the outcome of each, in order. Raises
        ``AdapterError`` if the transaction failed (then none of it applied)."""

        async def work(cur: Cursor) -> list[WorkflowError | None]:
            outcomes = [await self._apply(cur, w) for w in writes]
            applied = [w for w, o in zip(writes, outcomes, strict=True) if o is None]
            if applied:
                await self._add(cur, self._outbox, [_outbox_row(w) for w in applied])
                if self._history:
                    rows = [_history_row(w) for w in applied]
                    await self._add(cur, self._history, rows)
                deleted = sorted(
                    {
                        w.record.run_id
                        for w in applied
                        if w.record.run_state is RunState.DATA_DELETED
                    }
                )
                if deleted:
                    await cur.execute(self._scrub + _placeholders(len(deleted)), deleted)
            return outcomes

        outcomes = await self._db.transaction("storing records", work)
        written = zip(writes, outcomes, strict=True)
        for workflow in {w.record.workflow_name for w, o in written if o is None}:
            self._db.signal(outbox_signal(workflow)).fire()
        return outcomes

    async def _apply(self, cur: Cursor, write: RecordWrite) -> WorkflowError | None:
        """One write's record statement: ``None`` if it applied, else why not."""
        record = write.record
        values = _values(write)
        if write.expected_version == 0:
            try:
                await cur.execute(self._insert, [values[c] for c in COLUMNS])
            except Exception as exc:
                if error_code(exc) != DUPLICATE_KEY:
                    raise
                # The statement alone was rolled back. An insert whose run ID exists is
                # a version conflict, whichever unique index refused it first.
                await cur.execute(self._version, [record.run_id])
                found = await cur.fetchone()
                if found is not None:
                    return VersionConflict(record.run_id, 0, int(found[0]))
                return WorkflowInProgress(record.workflow_name, record.foreign_id)
            return None
        args = [*(values[c] for c in _UPDATED), record.run_id, write.expected_version]
        changed = await self._update_once(cur, args)
        if changed is not True:
            if changed is False:
                return WorkflowInProgress(record.workflow_name, record.foreign_id)
            await cur.execute(self._locked_version, [record.run_id])
            found = await cur.fetchone()
            stored = None if found is None else int(found[0])
            if stored != write.expected_version:
                return VersionConflict(record.run_id, write.expected_version, stored)
            # The row matches and is locked now: the update changed nothing (the same
            # values), or the run reached the expected version just after it. Again:
            if await self._update_once(cur, args) is False:
                return WorkflowInProgress(record.workflow_name, record.foreign_id)
        return None

    async def _update_once(self, cur: Cursor, args: list[object]) -> bool | None:
        """The compare-and-set ``UPDATE``: ``True`` if it changed the row, ``None`` if it
        changed none, ``False`` if it would make a second active run of the foreign ID
        (refused by ``records_one_active_run``: reviving a finished run)."""
        try:
            changed = await cur.execute(self._update, args)
        except Exception as exc:
            if error_code(exc) != DUPLICATE_KEY:
                raise
            return False
        return True if changed else None

    @staticmethod
    async def _add(cur: Cursor, head: str, rows: Sequence[tuple[object, ...]]) -> None:
        """``head`` (``INSERT INTO t (...) VALUES ``) for ``rows``, a chunk at a time."""
        for i in range(0, len(rows), _CHUNK):
            chunk = rows[i : i + _CHUNK]
            one = _placeholders(len(chunk[0]))
            args = [value for row in chunk for value in row]
            await cur.execute(head + ", ".join([one] * len(chunk)), args)


def outbox_signal(workflow_name: str) -> str:
    """The name of the in-process signal fired after a write adds to ``workflow_name``'s
    outbox."""
    return f"outbox:{workflow_name}"
